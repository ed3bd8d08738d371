"""Interconnection cases: one per registration that chose interconnected procedures; each chosen
step is PENDING until its agency answers DONE, REJECTED or NEEDS_SUPPLEMENT.

A case is COMPLETED when every step is done, REJECTED as soon as one step is rejected, OPEN
otherwise (overdue when a pending step is past its working-day deadline). Answers that came for
a case no task opened make a "waiting" case; one whose task never comes is given up on
(UNMATCHED, :func:`unmatched`) and its answers dead-lettered by the worker. Every change is a
citizen-facing ``CaseNotification`` (in Vietnamese) for hub.notification.v1.

Pure state transitions over plain dicts. The worker's table holds each open case serialised
(:func:`dump`, compact JSON) and its reports read a :class:`Summary` of it: ~1.1 KB of memory a
case against ~2.4 KB as dicts (``python -m hub.bench.cases --memory N``). Tasks and
acknowledgements may arrive in either order; both are keyed by case id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Required, TypedDict

import orjson

from hub.domain.records import (
    AckOutcome,
    AgencyAcknowledgement,
    AgencyAction,
    AgencyTask,
    CaseNotification,
)


class Step(TypedDict, total=False):
    """One chosen procedure of a case, as the case holds it (JSON: times as ISO text)."""

    state: Required[str]  # PENDING, or the agency's answer (an AckOutcome value)
    reason: str | None  # the agency's note with its answer
    agency: str  # who performs it (from its task, or from an answer that came first)
    action: str  # the procedure (AgencyAction value): set once its task came
    due_at: str  # its working-day deadline
    updated_at: str | None  # when the agency answered (None: an answer its task voided)


class KeptAnswer(TypedDict):
    """An answer that came before its step's task, kept as the message it came as (bytes as
    base64) until the task settles it or the case is given up on."""

    task_id: str
    agency: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str | None
    headers: list[list[Any]]  # [name, base64 value or None]: JSON has no tuples


class CaseState(TypedDict, total=False):
    """An interconnection case as the worker's table and the store's ``state`` column hold it
    (:func:`dump`); the keys its first task sets are absent while answers wait for it."""

    case_id: Required[str]
    steps: Required[dict[str, Step]]  # by task id
    status: Required[str]  # OPEN, COMPLETED, REJECTED or UNMATCHED
    workflow: str  # set by the first task (absent: the case waits)
    province: str
    dossier_code: str | None
    opened_at: str
    closed_at: str
    answers: list[KeptAnswer]  # answers waiting for their step's task
    waiting_since: str  # when the first of them came (the hub's clock)


PENDING = "PENDING"
OPEN, COMPLETED, REJECTED = "OPEN", "COMPLETED", "REJECTED"
CLOSED = frozenset({COMPLETED, REJECTED})
# Answers that waited too long for a task that never came: not closed (a task that comes after
# all opens the case afresh), and no longer kept by the worker.
UNMATCHED = "UNMATCHED"
NOTIFICATION_NAMESPACE = uuid.UUID("0b5c3d52-8f0e-4f7e-b1a3-6c1e1a7b2d90")

PROCEDURE_VI = {
    AgencyAction.RESIDENCE_REGISTRATION.value: "Đăng ký thường trú",
    AgencyAction.HEALTH_CARD_ISSUE.value: "Cấp thẻ bảo hiểm y tế",
    AgencyAction.RESIDENCE_REMOVAL.value: "Xóa đăng ký thường trú",
    AgencyAction.FUNERAL_ALLOWANCE.value: "Giải quyết mai táng phí",
    AgencyAction.SURVIVOR_BENEFIT.value: "Giải quyết trợ cấp tử tuất",
}
STEP_STATE_VI = {
    AckOutcome.DONE.value: "đã hoàn thành",
    AckOutcome.REJECTED.value: "bị từ chối",
    AckOutcome.NEEDS_SUPPLEMENT.value: "cần bổ sung hồ sơ",
}


def _new(case_id: str) -> CaseState:
    return {"case_id": case_id, "steps": {}, "status": OPEN}


def _step(case: CaseState, task_id: str) -> Step:
    return case["steps"].setdefault(task_id, {"state": PENDING, "reason": None})


def on_task(state: CaseState | None, task: AgencyTask) -> tuple[CaseState, list[CaseNotification]]:
    """A task of the case arrived (the first one opens the case)."""
    case: CaseState = _copy(state) if state else _new(str(task.case_id))
    opening = "workflow" not in case
    case["workflow"], case["province"] = task.workflow, task.province_code
    case["dossier_code"] = task.dossier_code
    case["opened_at"] = case.get("opened_at") or task.issued_at.isoformat()
    # Every task of the case is known from the first one to arrive: a case is not complete
    # when that one is done while its siblings are still on their way. Steps answered before
    # any task that the case does not have are dropped (the worker dead-letters the answers).
    if opening and task.case_task_ids:
        for task_id in set(case["steps"]) - set(task.case_task_ids):
            del case["steps"][task_id]
    for task_id in task.case_task_ids or [task.task_id]:
        _step(case, task_id)
    step = _step(case, task.task_id)
    first = "action" not in step
    if step.get("agency") not in (None, task.agency.value):
        # An answer that came before its task, from an agency the task is not for: void.
        step["state"], step["reason"], step["updated_at"] = PENDING, None, None
    step["agency"], step["action"] = task.agency.value, task.action.value
    step["due_at"] = task.due_at.isoformat()
    notes = [_note(case, None, OPEN, None, task.issued_at)] if opening else []
    answered = step.get("updated_at")  # set with every answer (None: voided, PENDING again)
    if first and answered:  # its answer came first: the citizen hears of it now
        notes.append(_note(case, task.task_id, step["state"], step.get("reason"),
                           datetime.fromisoformat(answered)))  # fmt: skip
    return case, notes + _settle(case, task.issued_at)


class WrongAgency(ValueError):
    """An acknowledgement for a step of another agency (reason ``ack_wrong_agency``)."""

    reason = "ack_wrong_agency"


class UnknownStep(ValueError):
    """An acknowledgement for a task the case does not have (reason ``ack_unknown_task``)."""

    reason = "ack_unknown_task"


def on_ack(
    state: CaseState | None, ack: AgencyAcknowledgement, from_agency: str | None = None
) -> tuple[CaseState, list[CaseNotification]]:
    """An agency answered for one step. ``from_agency``: the agency whose own acknowledgement
    topic it came on (None: the shared topic of before); an answer for another agency's step,
    or naming another agency, is refused."""
    case: CaseState = _copy(state) if state else _new(str(ack.case_id))
    if "workflow" in case and ack.task_id not in case["steps"]:
        raise UnknownStep(f"case {case['case_id']} has no task {ack.task_id!r}")
    known = _field(case, ack.task_id, "agency")
    if from_agency is not None and (
        ack.agency.value != from_agency or (known is not None and known != from_agency)
    ):
        raise WrongAgency(f"{from_agency} answered for a {known or ack.agency.value} step "
                          f"({ack.task_id})")  # fmt: skip
    step = _step(case, ack.task_id)
    if step["state"] == ack.outcome.value and step.get("reason") == ack.note:
        return case, []  # a redelivered acknowledgement changes nothing
    step["state"], step["reason"] = ack.outcome.value, ack.note
    step["agency"], step["updated_at"] = ack.agency.value, ack.acknowledged_at.isoformat()
    notes: list[CaseNotification] = []
    if "action" in step:  # the citizen hears of a step once its task came (it may void this)
        notes.append(_note(case, ack.task_id, ack.outcome.value, ack.note, ack.acknowledged_at))
    return case, notes + _settle(case, ack.acknowledged_at)


def waiting(case: CaseState) -> bool:
    """Answers came for the case, and no task yet."""
    return "workflow" not in case and case["status"] == OPEN


def unmatched(case: CaseState, at: datetime) -> CaseState:
    """A waiting case given up on at ``at``: its task never came (the worker dead-letters the
    answers and forgets the case; its store row says ``unmatched``)."""
    given_up = _copy(case)
    given_up["status"], given_up["closed_at"] = UNMATCHED, at.isoformat()
    return given_up


def _field(case: CaseState, task_id: str, name: Literal["agency", "action"]) -> str | None:
    """The agency or the action of a step of the case (None: no such step, or not known yet)."""
    step = case["steps"].get(task_id)
    return None if step is None else step.get(name)


def _copy(state: CaseState) -> CaseState:
    return {**state, "steps": {k: v.copy() for k, v in state.get("steps", {}).items()}}


def _settle(case: CaseState, at: datetime) -> list[CaseNotification]:
    """Close the case when its steps say so; the notification of that, if it changed. Only the
    steps whose task came count: an answer that came before its task may be voided by it (from
    an agency the step is not for), so it neither completes nor rejects the case until then."""
    if case["status"] != OPEN or "workflow" not in case:
        return []
    steps = case["steps"].values()
    confirmed = [s["state"] for s in steps if "action" in s]
    if AckOutcome.REJECTED.value in confirmed:
        case["status"] = REJECTED
    elif (
        confirmed
        and len(confirmed) == len(steps)
        and all(s == AckOutcome.DONE.value for s in confirmed)
    ):
        case["status"] = COMPLETED
    else:
        return []
    # Closed when the last of its tasks and answers came (an answer may have overtaken a task).
    at = max([at, *(datetime.fromisoformat(u) for s in steps
                    if "action" in s and (u := s.get("updated_at")))])  # fmt: skip
    case["closed_at"] = at.isoformat()
    rejected = [s for s in steps if s["state"] == AckOutcome.REJECTED.value and "action" in s]
    reason = rejected[0].get("reason") if rejected else None
    return [_note(case, None, case["status"], reason, at)]


def _procedure(case: CaseState, task_id: str | None) -> tuple[str | None, str]:
    """The step's action and its name in Vietnamese."""
    if task_id is None:
        return None, ""
    action = _field(case, task_id, "action") or task_id.rsplit(":", 1)[-1]
    return action, PROCEDURE_VI.get(action, action)


def _message(case: CaseState, task_id: str | None, state: str, reason: str | None) -> str:
    dossier = case.get("dossier_code") or case["case_id"]
    _, procedure = _procedure(case, task_id)
    if state == OPEN:
        text = f"Hồ sơ liên thông {dossier} đã được tiếp nhận và chuyển đến các cơ quan"
    elif state == COMPLETED:
        text = f"Hồ sơ liên thông {dossier} đã được giải quyết xong"
    elif state == REJECTED and case["status"] == REJECTED and task_id is None:
        text = f"Hồ sơ liên thông {dossier} bị từ chối"
    else:
        text = f"{procedure} của hồ sơ {dossier} {STEP_STATE_VI.get(state, state)}"
    return text + (f": {reason}." if reason else ".")


def _note(case: CaseState, task_id: str | None, state: str, reason: str | None,
          at: datetime) -> CaseNotification:  # fmt: skip
    """A notification of one change; ``task_id`` None: the case as a whole."""
    action, _ = _procedure(case, task_id)
    key = f"{case['case_id']}:{task_id}:{state}:{reason}"
    return CaseNotification(
        notification_id=uuid.uuid5(NOTIFICATION_NAMESPACE, key),
        case_id=uuid.UUID(case["case_id"]),
        dossier_code=case.get("dossier_code"),
        workflow=case.get("workflow", ""),
        step=action,
        agency=_field(case, task_id, "agency") if task_id else None,
        state=state,
        reason=reason,
        message_vi=_message(case, task_id, state, reason),
        at=at,
    )


def pending(case: CaseState) -> dict[str, str]:
    """Steps (task id → agency) not yet done or refused."""
    return {t: s.get("agency", "") for t, s in case["steps"].items()
            if s["state"] in (PENDING, AckOutcome.NEEDS_SUPPLEMENT.value)}  # fmt: skip


def status(case: CaseState, now: datetime) -> str:
    """completed, rejected, overdue, open, or waiting (answers seen before any task).

    Overdue: a step still PENDING past its working-day deadline. A step waiting for the
    citizen's supplement is not the agency's delay.
    """
    return summary(case).status_at(now)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the worker's reports read of a case: its status at any moment, the agencies of its
    pending steps, since when it waits (the case itself stays in the table, serialised)."""

    case_id: str
    status: str  # the case's own status field (OPEN, COMPLETED, REJECTED, UNMATCHED)
    workflow: str | None  # None: answers came and no task yet (the case waits)
    first_due: datetime | None  # the earliest deadline of a step still PENDING
    agencies: tuple[str, ...]  # of the steps not yet done or refused (:func:`pending`)
    waiting_since: str | None

    @property
    def waiting(self) -> bool:
        """Answers came for the case, and no task yet (:func:`waiting`)."""
        return self.workflow is None and self.status == OPEN

    def status_at(self, now: datetime) -> str:
        if self.status == COMPLETED:
            return "completed"
        if self.status == REJECTED:
            return "rejected"
        if self.status == UNMATCHED:
            return "unmatched"
        if self.workflow is None:
            return "waiting"
        if self.first_due is not None and now >= self.first_due:
            return "overdue"
        return "open"


def summary(case: CaseState) -> Summary:
    dues = [datetime.fromisoformat(s["due_at"]) for s in case["steps"].values()
            if s["state"] == PENDING and s.get("due_at")]  # fmt: skip
    return Summary(
        case_id=case["case_id"], status=case["status"],
        workflow=case.get("workflow"),
        first_due=min(dues) if dues else None, agencies=tuple(pending(case).values()),
        waiting_since=case.get("waiting_since"),
    )  # fmt: skip


def dump(case: CaseState) -> bytes:
    """A case as the worker's table holds it: compact JSON, UTF-8. faust's json serializer wrote
    JSON too, so a changelog written before (or by an older worker in a rolling upgrade) reads
    back, and an older worker reads what this one writes. orjson writes the same bytes as
    ``json.dumps(case, ensure_ascii=False, separators=(",", ":"))`` did for these values (strings,
    integers, booleans, None, lists, dicts: tests/unit/test_case_tracker.py), ~16× faster (and
    loads ~4× faster); a case change is dumped twice (the table, the store row) and loaded once
    (``python -m hub.bench.cases --json N``; docs/BENCHMARKS.md, sixteenth round)."""
    return orjson.dumps(case)


def load(raw: bytes | str) -> CaseState:
    """A case from :func:`dump`'s bytes (or faust's JSON of before)."""
    case: CaseState = orjson.loads(raw)
    return case


def store_row(case: CaseState, now: datetime) -> tuple[Any, ...]:
    """The ``interconnection_cases`` row; its last column is the whole state, from which
    :func:`from_store` gives the case back (the store keeps closed cases, the worker does not)."""
    due = [s["due_at"] for s in case["steps"].values() if s.get("due_at")]
    return (
        case["case_id"], case.get("workflow", ""), case.get("province", ""),
        case.get("opened_at") or now.isoformat(), max(due) if due else now.isoformat(),
        ",".join(sorted(pending(case).values())), status(case, now), case.get("closed_at"),
        dump(case).decode(),
    )  # fmt: skip


def from_store(state: str) -> CaseState:
    """A case from the ``state`` column of its store row."""
    return load(state)


def step_rows(case: CaseState) -> list[tuple[Any, ...]]:
    """One row per step: its state, reason and times (the ``case_steps`` table)."""
    return [
        (case["case_id"], task_id, s.get("agency", ""), s.get("action", ""), s["state"],
         s.get("reason"), s.get("due_at"), s.get("updated_at"))
        for task_id, s in sorted(case["steps"].items())
    ]  # fmt: skip
