"""Interconnected procedures (Decree 63/2024) declared as data, and their expansion into tasks.

A workflow says which event type triggers which agency actions, and which fields of the event
each agency receives; nothing else of the event leaves the hub for that agency.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.domain.enums import EventType
from hub.domain.events import SourceEvent
from hub.domain.records import Agency, AgencyAction, AgencyTask
from hub.domain.topics import AgencyTopic


@dataclass(frozen=True)
class Step:
    agency: Agency
    action: AgencyAction
    topic: AgencyTopic
    fields: tuple[str, ...]  # event fields this agency needs, and only those


@dataclass(frozen=True)
class Workflow:
    name: str
    trigger: EventType
    steps: tuple[Step, ...]


WORKFLOWS: tuple[Workflow, ...] = (
    Workflow(
        "birth",
        EventType.CIVIL_BIRTH,
        (
            Step(Agency.POLICE, AgencyAction.RESIDENCE_REGISTRATION, AgencyTopic.RESIDENCE,
                 ("child_id", "child_full_name", "child_sex", "child_date_of_birth",
                  "mother_id", "father_id", "commune_code")),
            Step(Agency.SOCIAL_INSURANCE, AgencyAction.HEALTH_CARD_ISSUE,
                 AgencyTopic.HEALTH_INSURANCE,
                 ("child_id", "child_full_name", "child_sex", "child_date_of_birth",
                  "province_code")),
        ),
    ),
    Workflow(
        "death",
        EventType.CIVIL_DEATH,
        (
            Step(Agency.POLICE, AgencyAction.RESIDENCE_REMOVAL, AgencyTopic.RESIDENCE,
                 ("deceased_id", "deceased_full_name", "date_of_death", "commune_code")),
            Step(Agency.SOCIAL_AFFAIRS, AgencyAction.FUNERAL_ALLOWANCE,
                 AgencyTopic.FUNERAL_ALLOWANCE,
                 ("deceased_id", "deceased_full_name", "date_of_death", "declarant_id",
                  "registration_number")),
            Step(Agency.SOCIAL_INSURANCE, AgencyAction.HEALTH_CARD_CLOSE,
                 AgencyTopic.HEALTH_INSURANCE, ("deceased_id", "date_of_death")),
        ),
    ),
)  # fmt: skip
WORKFLOW_OF: dict[EventType, Workflow] = {w.trigger: w for w in WORKFLOWS}
WORKFLOW_BY_NAME: dict[str, Workflow] = {w.name: w for w in WORKFLOWS}
CASE_NAMESPACE = uuid.UUID("6f0d3c1e-7a52-4c1b-9a51-2d1f3b9e8c00")


def case_id_for(event_id: uuid.UUID) -> uuid.UUID:
    """Deterministic: a replayed registration reopens the same case, never a second one."""
    return uuid.uuid5(CASE_NAMESPACE, str(event_id))


def task_id_for(case_id: uuid.UUID, action: AgencyAction) -> str:
    return f"{case_id}:{action.value}"


def expand(
    event: SourceEvent, province: str, commune: str, now: datetime, deadline: timedelta
) -> list[tuple[AgencyTopic, AgencyTask]]:
    """The agency tasks an event triggers (none for events without a workflow)."""
    workflow = WORKFLOW_OF.get(event.EVENT_TYPE)
    if workflow is None:
        return []
    case_id = case_id_for(event.event_id)
    values = event.model_dump(mode="json")
    values.update(province_code=province, commune_code=commune)
    tasks = []
    for step in workflow.steps:
        fields = {name: str(values[name]) for name in step.fields if values.get(name) is not None}
        task = AgencyTask(
            case_id=case_id,
            task_id=task_id_for(case_id, step.action),
            workflow=workflow.name,
            agency=step.agency,
            action=step.action,
            trigger_event_id=event.event_id,
            province_code=province,
            commune_code=commune,
            issued_at=now,
            due_at=now + deadline,
            fields=fields,
        )
        tasks.append((step.topic, task))
    return tasks
