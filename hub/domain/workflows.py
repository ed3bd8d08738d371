"""Interconnected procedures (Decree 63/2024) as data, eligibility as rules, tasks as output.

A registration opens a case only when it is a LIVE application whose applicant chose
interconnected procedures; each chosen procedure becomes one task for the agency that performs
it after the 2025 reorganisation, due a number of working days after the dossier's receipt,
carrying only the fields that agency needs. Every procedure the rules skip says why (the
``hub_interconnection_skipped_total`` metric). Sources: docs/WORKFLOWS.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from hub.domain import calendar
from hub.domain.enums import (
    BeneficiaryCategory,
    BirthProcedure,
    DeathProcedure,
    EventType,
    RecordOrigin,
)
from hub.domain.events import BirthRegistration, DeathRegistration, SourceEvent
from hub.domain.records import Agency, AgencyAction, AgencyTask
from hub.domain.topics import AgencyTopic


@dataclass(frozen=True)
class Step:
    agency: Agency
    action: AgencyAction
    topic: AgencyTopic
    fields: tuple[str, ...]  # event fields this agency needs, and only those
    working_days: int  # from the dossier's receipt (hub/domain/calendar.py)
    source: str  # the text the deadline and the routing come from


@dataclass(frozen=True)
class Workflow:
    name: str
    trigger: EventType
    steps: tuple[Step, ...]  # every step the workflow can have; a case has those chosen


_BIRTH = ("child_id", "child_full_name", "child_sex", "child_date_of_birth")
_DEATH = ("deceased_id", "deceased_full_name", "date_of_death", "registration_number")
_BENEFIT = (*_DEATH, "declarant_id", "interconnection.applicant_id",
            "interconnection.beneficiary_category", "interconnection.payment_account")  # fmt: skip

RESIDENCE_REGISTRATION = Step(
    Agency.POLICE, AgencyAction.RESIDENCE_REGISTRATION, AgencyTopic.RESIDENCE,
    (*_BIRTH, "mother_id", "father_id", "commune_code", "interconnection.residence_address",
     "interconnection.household_head_id", "interconnection.household_relationship"),
    3, "Decree 63/2024 Art. 8; Law on Residence 2020 Art. 22",
)  # fmt: skip
HEALTH_CARD_ISSUE = Step(
    Agency.SOCIAL_INSURANCE, AgencyAction.HEALTH_CARD_ISSUE, AgencyTopic.HEALTH_INSURANCE,
    (*_BIRTH, "province_code", "interconnection.initial_care_facility",
     "interconnection.guardian_id"),
    2, "Decree 63/2024 Art. 8 (card within 2 working days)",
)  # fmt: skip
RESIDENCE_REMOVAL = Step(
    Agency.POLICE, AgencyAction.RESIDENCE_REMOVAL, AgencyTopic.RESIDENCE,
    ("deceased_id", "deceased_full_name", "date_of_death", "commune_code"),
    3, "Decree 63/2024 Art. 11; Law on Residence 2020 Art. 24",
)  # fmt: skip


def _benefit(agency: Agency, action: AgencyAction, topic: AgencyTopic, days: int,
             source: str) -> Step:  # fmt: skip
    return Step(agency, action, topic, _BENEFIT, days, source)


# Who pays the funeral allowance / survivor benefit, by the deceased's beneficiary category.
BENEFIT_STEPS: dict[tuple[BeneficiaryCategory, DeathProcedure], Step] = {
    (BeneficiaryCategory.SOCIAL_INSURANCE, DeathProcedure.FUNERAL_ALLOWANCE): _benefit(
        Agency.SOCIAL_INSURANCE, AgencyAction.FUNERAL_ALLOWANCE,
        AgencyTopic.SOCIAL_INSURANCE_BENEFITS, 5,
        "Decree 63/2024 Art. 12; Law on Social Insurance 2024 (funeral allowance)"),
    (BeneficiaryCategory.SOCIAL_INSURANCE, DeathProcedure.SURVIVOR_BENEFIT): _benefit(
        Agency.SOCIAL_INSURANCE, AgencyAction.SURVIVOR_BENEFIT,
        AgencyTopic.SOCIAL_INSURANCE_BENEFITS, 10,
        "Decree 63/2024 Art. 12; Law on Social Insurance 2024 (survivor benefit)"),
    (BeneficiaryCategory.SOCIAL_PROTECTION, DeathProcedure.FUNERAL_ALLOWANCE): _benefit(
        Agency.COMMUNE_PEOPLES_COMMITTEE, AgencyAction.FUNERAL_ALLOWANCE,
        AgencyTopic.COMMUNE_SOCIAL_PROTECTION, 3,
        "Decree 20/2021 Art. 11 (funeral support); district level abolished 1 July 2025"),
    (BeneficiaryCategory.MERITORIOUS, DeathProcedure.FUNERAL_ALLOWANCE): _benefit(
        Agency.PROVINCIAL_HOME_AFFAIRS, AgencyAction.FUNERAL_ALLOWANCE,
        AgencyTopic.MERITORIOUS_BENEFITS, 12,
        "Decree 131/2021 (people with meritorious services); Home Affairs from March 2025"),
    (BeneficiaryCategory.MERITORIOUS, DeathProcedure.SURVIVOR_BENEFIT): _benefit(
        Agency.PROVINCIAL_HOME_AFFAIRS, AgencyAction.SURVIVOR_BENEFIT,
        AgencyTopic.MERITORIOUS_BENEFITS, 12,
        "Decree 131/2021 (survivor allowance); Home Affairs from March 2025"),
}  # fmt: skip

WORKFLOWS: tuple[Workflow, ...] = (
    Workflow("birth", EventType.CIVIL_BIRTH, (RESIDENCE_REGISTRATION, HEALTH_CARD_ISSUE)),
    Workflow("death", EventType.CIVIL_DEATH, (RESIDENCE_REMOVAL, *BENEFIT_STEPS.values())),
)
WORKFLOW_OF: dict[EventType, Workflow] = {w.trigger: w for w in WORKFLOWS}
WORKFLOW_BY_NAME: dict[str, Workflow] = {w.name: w for w in WORKFLOWS}
CASE_NAMESPACE = uuid.UUID("6f0d3c1e-7a52-4c1b-9a51-2d1f3b9e8c00")
# The health-insurance card of the birth group is for children under 6 (Decree 63/2024 title;
# Law on Health Insurance: the State pays the card of children under 6).
CARD_AGE_LIMIT_YEARS = 6


def topics_of(agency: Agency) -> list[str]:
    """The agency topics whose tasks go to ``agency`` (from the declared workflows)."""
    return sorted({s.topic.value for w in WORKFLOWS for s in w.steps if s.agency is agency})


def case_id_for(event_id: uuid.UUID) -> uuid.UUID:
    """Deterministic: a replayed registration reopens the same case, never a second one."""
    return uuid.uuid5(CASE_NAMESPACE, str(event_id))


def task_id_for(case_id: uuid.UUID, action: AgencyAction) -> str:
    return f"{case_id}:{action.value}"


def age_in_years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


@dataclass(frozen=True)
class Plan:
    """What a registration sets in motion: its workflow's chosen steps, and what was skipped."""

    workflow: Workflow | None
    steps: list[Step] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # reason codes, one per skipped procedure


# The plan of every event no workflow starts (most events): made once, never changed.
NO_WORKFLOW = Plan(None)


def plan(event: SourceEvent) -> Plan:
    """The eligibility rules (docs/WORKFLOWS.md), each skip with its reason code."""
    workflow = WORKFLOW_OF.get(event.EVENT_TYPE)
    if workflow is None or not isinstance(event, BirthRegistration | DeathRegistration):
        return NO_WORKFLOW
    if event.origin is RecordOrigin.DIGITISED:
        return Plan(workflow, skipped=["digitised"])
    if event.origin is RecordOrigin.CORRECTION:
        return Plan(workflow, skipped=["correction"])
    if event.interconnection is None:
        return Plan(workflow, skipped=["registration_only"])
    if isinstance(event, BirthRegistration):
        return _birth_plan(workflow, event)
    return _death_plan(workflow, event)


def _birth_plan(workflow: Workflow, event: BirthRegistration) -> Plan:
    assert event.interconnection is not None
    chosen = event.interconnection
    steps, skipped = [], []
    for procedure in chosen.procedures:
        if procedure is BirthProcedure.RESIDENCE_REGISTRATION:
            if chosen.collective_household:
                skipped.append("collective_household")
            else:
                steps.append(RESIDENCE_REGISTRATION)
        elif procedure is BirthProcedure.HEALTH_INSURANCE_CARD:
            age = age_in_years(event.child_date_of_birth, event.occurred_at.date())
            if age >= CARD_AGE_LIMIT_YEARS:
                skipped.append("child_not_under_6")
            else:
                steps.append(HEALTH_CARD_ISSUE)
    return Plan(workflow, steps, skipped)


def _death_plan(workflow: Workflow, event: DeathRegistration) -> Plan:
    assert event.interconnection is not None
    chosen = event.interconnection
    steps, skipped = [], []
    for procedure in chosen.procedures:
        if procedure is DeathProcedure.RESIDENCE_REMOVAL:
            steps.append(RESIDENCE_REMOVAL)
            continue
        if chosen.beneficiary_category is BeneficiaryCategory.NONE:
            skipped.append("no_beneficiary_category")
            continue
        step = BENEFIT_STEPS.get((chosen.beneficiary_category, procedure))
        if step is None:
            skipped.append("not_paid_for_category")  # e.g. no survivor benefit under Decree 20
        else:
            steps.append(step)
    return Plan(workflow, steps, skipped)


@lru_cache(maxsize=64)
def _fields_of(steps: tuple[Step, ...]) -> dict[str, Any]:
    """The event fields ``steps`` carry, as pydantic's ``include`` (``interconnection.x``
    becomes ``{"interconnection": {"x": True}}``)."""
    spec: dict[str, Any] = {}
    for step in steps:
        for name in step.fields:
            head, _, rest = name.partition(".")
            nested = spec.get(head)
            if not rest:
                spec[head] = True  # the whole field
            elif nested is not True:
                spec[head] = {**(nested or {}), rest: True}
    return spec


def _value(values: dict[str, object], name: str) -> object:
    head, _, rest = name.partition(".")
    value = values.get(head)
    if rest:
        return value.get(rest) if isinstance(value, dict) else None
    return value


def expand(event: SourceEvent, province: str, commune: str,
           now: datetime) -> tuple[list[tuple[AgencyTopic, AgencyTask]], Plan]:  # fmt: skip
    """The agency tasks an event triggers, with the plan (and its skips) behind them."""
    chosen = plan(event)
    if chosen.workflow is None or not chosen.steps:
        return [], chosen
    assert isinstance(event, BirthRegistration | DeathRegistration)
    assert event.interconnection is not None
    received = event.interconnection.received_at
    case_id = case_id_for(event.event_id)
    # Only the fields the chosen steps carry, as JSON would show them (a whole dump of the
    # event cost more than the rest of the fan-out).
    values = event.model_dump(mode="json", include=_fields_of(tuple(chosen.steps)))
    values.update(province_code=province, commune_code=commune)
    task_ids = [task_id_for(case_id, step.action) for step in chosen.steps]
    tasks = []
    for step, task_id in zip(chosen.steps, task_ids, strict=True):
        fields = {name: str(v) for name in step.fields if (v := _value(values, name)) is not None}
        tasks.append((step.topic, AgencyTask(
            case_id=case_id,
            task_id=task_id,
            workflow=chosen.workflow.name,
            agency=step.agency,
            action=step.action,
            trigger_event_id=event.event_id,
            province_code=province,
            commune_code=commune,
            issued_at=now,
            due_at=calendar.due_at(received, step.working_days),
            fields=fields,
            dossier_code=event.interconnection.dossier_code,
            deadline_basis=calendar.basis(received, step.working_days),
            case_task_ids=task_ids,
        )))  # fmt: skip
    return tasks, chosen
