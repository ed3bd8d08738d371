"""Interconnection cases: one per triggering registration, open until every agency acknowledges.

Pure state transitions over plain dicts (they live in a faust Table, serialised as JSON). Tasks
and acknowledgements may arrive in either order; both are keyed by case id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.domain.records import AgencyAcknowledgement, AgencyTask
from hub.domain.workflows import WORKFLOW_BY_NAME, task_id_for

CaseState = dict[str, Any]


def on_task(state: CaseState | None, task: AgencyTask) -> CaseState:
    case: CaseState = (
        dict(state) if state else {"case_id": str(task.case_id), "tasks": {}, "acked": []}
    )
    case.update(
        workflow=task.workflow,
        province=task.province_code,
        opened_at=case.get("opened_at") or task.issued_at.isoformat(),
        due_at=task.due_at.isoformat(),
    )
    # The workflow declares every task of the case: a case is not done when the first task
    # to arrive is acknowledged while its siblings are still on their way.
    declared = {
        task_id_for(task.case_id, step.action): step.agency.value
        for step in WORKFLOW_BY_NAME[task.workflow].steps
    }
    case["tasks"] = {**declared, **case["tasks"], task.task_id: task.agency.value}
    return _maybe_close(case, task.issued_at)


def on_ack(state: CaseState | None, ack: AgencyAcknowledgement) -> CaseState:
    case: CaseState = (
        dict(state) if state else {"case_id": str(ack.case_id), "tasks": {}, "acked": []}
    )
    if ack.task_id not in case["acked"]:
        case["acked"] = [*case["acked"], ack.task_id]
    return _maybe_close(case, ack.acknowledged_at)


def _maybe_close(case: CaseState, at: datetime) -> CaseState:
    if case.get("closed_at") is None and case["tasks"] and not pending(case):
        case["closed_at"] = at.isoformat()
    return case


def pending(case: CaseState) -> dict[str, str]:
    """Tasks (task id → agency) not yet acknowledged."""
    acked = set(case["acked"])
    return {t: a for t, a in case["tasks"].items() if t not in acked}


def status(case: CaseState, now: datetime) -> str:
    """closed, overdue, open, or waiting (acknowledgements seen before the tasks)."""
    if case.get("closed_at"):
        return "closed"
    if not case["tasks"]:
        return "waiting"
    if now > datetime.fromisoformat(case["due_at"]):
        return "overdue"
    return "open"


def store_row(case: CaseState, now: datetime) -> tuple[Any, ...]:
    return (
        case["case_id"], case.get("workflow", ""), case.get("province", ""),
        case.get("opened_at") or now.isoformat(), case.get("due_at") or now.isoformat(),
        ",".join(sorted(pending(case).values())), status(case, now), case.get("closed_at"),
    )  # fmt: skip
