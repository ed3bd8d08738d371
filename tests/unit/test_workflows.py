"""Interconnected procedures (issue 13): the citizen's choice, eligibility with reasons,
working-day deadlines on the holiday calendar, outcomes back to the citizen."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import holidays
import pytest
from pydantic import ValidationError

from hub.domain import calendar, cases
from hub.domain.enums import BeneficiaryCategory, BirthProcedure, DeathProcedure, RecordOrigin
from hub.domain.events import (
    DEATH_GROUPS,
    BirthInterconnection,
    BirthRegistration,
    DeathInterconnection,
    DeathRegistration,
)
from hub.domain.records import AckOutcome, Agency, AgencyAcknowledgement, AgencyAction
from hub.domain.topics import SourceTopic
from hub.domain.workflows import expand, plan
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec, _load

NOW = datetime.now(UTC).replace(microsecond=0)
TRAFFIC = Traffic(Codec(), seed=5, provinces=2, population=300, now=NOW)
ICT = timezone(timedelta(hours=7))


def birth(procedures: list[BirthProcedure] | None, **extra: Any) -> BirthRegistration:
    event: BirthRegistration = TRAFFIC.event(SourceTopic.BIRTH)  # type: ignore[assignment]
    data = event.to_avro()
    data.pop("interconnection")
    applicant = next(p for p in TRAFFIC.people if p.date_of_birth.year < 2000)
    if procedures is not None:
        data["interconnection"] = {
            "dossier_code": "LT-000123", "applicant_id": applicant.personal_id,
            "received_at": extra.pop("received_at", NOW - timedelta(hours=1)),
            "procedures": procedures, **extra.pop("ic", {}),
        }  # fmt: skip
    return BirthRegistration.model_validate({**data, **extra})


def death(procedures: list[DeathProcedure] | None,
          category: BeneficiaryCategory = BeneficiaryCategory.SOCIAL_INSURANCE,
          **extra: Any) -> DeathRegistration:  # fmt: skip
    event: DeathRegistration = TRAFFIC.event(SourceTopic.DEATH)  # type: ignore[assignment]
    data = event.to_avro()
    data.pop("interconnection")
    applicant = next(p for p in TRAFFIC.people if p.date_of_birth.year < 2000)
    if procedures is not None:
        data["interconnection"] = {
            "dossier_code": "LT-000456", "applicant_id": applicant.personal_id,
            "received_at": NOW - timedelta(hours=1), "procedures": procedures,
            "beneficiary_category": category,
        }  # fmt: skip
    return DeathRegistration.model_validate({**data, **extra})


# ---- the choice and eligibility ------------------------------------------------------------
BIRTH_COMBINATIONS = [list(c) for n in (1, 2) for c in itertools.combinations(BirthProcedure, n)]
ACTION_OF_BIRTH = {
    BirthProcedure.RESIDENCE_REGISTRATION: AgencyAction.RESIDENCE_REGISTRATION,
    BirthProcedure.HEALTH_INSURANCE_CARD: AgencyAction.HEALTH_CARD_ISSUE,
}


@pytest.mark.parametrize("chosen", BIRTH_COMBINATIONS, ids=str)
def test_a_live_birth_produces_exactly_the_chosen_steps(chosen: list[BirthProcedure]) -> None:
    tasks, _ = expand(birth(chosen), "79", "26734", NOW)
    assert sorted(t.action for _, t in tasks) == sorted(ACTION_OF_BIRTH[p] for p in chosen)
    assert all(sorted(t.case_task_ids) == sorted(x.task_id for _, x in tasks) for _, t in tasks)


DEATH_ACTION = {DeathProcedure.RESIDENCE_REMOVAL: AgencyAction.RESIDENCE_REMOVAL,
                DeathProcedure.FUNERAL_ALLOWANCE: AgencyAction.FUNERAL_ALLOWANCE,
                DeathProcedure.SURVIVOR_BENEFIT: AgencyAction.SURVIVOR_BENEFIT}  # fmt: skip
PAYER = {BeneficiaryCategory.SOCIAL_INSURANCE: Agency.SOCIAL_INSURANCE,
         BeneficiaryCategory.SOCIAL_PROTECTION: Agency.COMMUNE_PEOPLES_COMMITTEE,
         BeneficiaryCategory.MERITORIOUS: Agency.PROVINCIAL_HOME_AFFAIRS}  # fmt: skip


@pytest.mark.parametrize("chosen", sorted(DEATH_GROUPS, key=len), ids=lambda g: str(sorted(g)))
@pytest.mark.parametrize("category", list(PAYER), ids=str)
def test_a_live_death_routes_each_chosen_benefit_to_its_payer(
    chosen: frozenset[DeathProcedure], category: BeneficiaryCategory
) -> None:
    event = death(sorted(chosen), category)
    tasks, chosen_plan = expand(event, "79", "26734", NOW)
    got = {t.action: t.agency for _, t in tasks}
    assert got.pop(AgencyAction.RESIDENCE_REMOVAL) is Agency.POLICE
    benefits = chosen - {DeathProcedure.RESIDENCE_REMOVAL}
    no_survivor = category is BeneficiaryCategory.SOCIAL_PROTECTION  # Decree 20: funeral only
    expected = {DEATH_ACTION[p]: PAYER[category] for p in benefits
                if not (no_survivor and p is DeathProcedure.SURVIVOR_BENEFIT)}  # fmt: skip
    assert got == expected
    assert Agency.SOCIAL_AFFAIRS not in {t.agency for _, t in tasks}
    assert AgencyAction.HEALTH_CARD_CLOSE not in {t.action for _, t in tasks}
    if no_survivor and DeathProcedure.SURVIVOR_BENEFIT in chosen:
        assert chosen_plan.skipped == ["not_paid_for_category"]


def test_a_death_group_the_decree_does_not_allow_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        death([DeathProcedure.SURVIVOR_BENEFIT])
    assert "invalid_procedure_group" in str(info.value)


@pytest.mark.parametrize(
    ("origin", "reason"),
    [(RecordOrigin.DIGITISED, "digitised"), (RecordOrigin.CORRECTION, "correction")],
)
def test_digitised_records_and_corrections_open_no_case(origin: RecordOrigin, reason: str) -> None:
    for event in (birth(BIRTH_COMBINATIONS[-1], origin=origin),
                  death([DeathProcedure.RESIDENCE_REMOVAL], origin=origin)):  # fmt: skip
        tasks, chosen = expand(event, "79", "26734", NOW)
        assert tasks == [] and chosen.skipped == [reason]


def test_registration_only_and_v1_records_open_no_case() -> None:
    tasks, chosen = expand(birth(None), "79", "26734", NOW)
    assert tasks == [] and chosen.skipped == ["registration_only"]


def test_a_child_of_7_gets_no_card_task_and_the_reason_is_recorded() -> None:
    born = NOW.date() - timedelta(days=7 * 366)
    child = TRAFFIC._person(born)  # a real personal ID for that birth year
    event = birth(BIRTH_COMBINATIONS[-1], child_id=child.personal_id, child_sex=child.sex,
                  child_date_of_birth=born)  # fmt: skip
    tasks, chosen = expand(event, "79", "26734", NOW)
    assert [t.action for _, t in tasks] == [AgencyAction.RESIDENCE_REGISTRATION]
    assert chosen.skipped == ["child_not_under_6"]


def test_collective_household_residence_is_not_interconnected() -> None:
    event = birth([BirthProcedure.RESIDENCE_REGISTRATION], ic={"collective_household": True})
    tasks, chosen = expand(event, "79", "26734", NOW)
    assert tasks == [] and chosen.skipped == ["collective_household"]


def test_each_agency_receives_only_its_steps_fields() -> None:
    extra = {"residence_address": "Số 5, tổ 2", "initial_care_facility": "79001"}
    tasks, _ = expand(birth(BIRTH_COMBINATIONS[-1], ic=extra), "79", "26734", NOW)
    by_action = {t.action: t.fields for _, t in tasks}
    police = by_action[AgencyAction.RESIDENCE_REGISTRATION]
    card = by_action[AgencyAction.HEALTH_CARD_ISSUE]
    assert "interconnection.residence_address" in police
    assert "interconnection.residence_address" not in card
    assert "interconnection.initial_care_facility" in card
    assert "interconnection.initial_care_facility" not in police


def test_a_task_carries_its_steps_fields_as_the_whole_event_reads_in_json() -> None:
    """Each declared field, read from the whole event dumped as JSON (as an agency's JSON
    reader would see it): the value the task carries, as text, and nothing else."""
    extra = {"residence_address": "Số 5, tổ 2", "initial_care_facility": "79001",
             "household_head_id": None, "household_relationship": "Con"}  # fmt: skip
    events = [birth(BIRTH_COMBINATIONS[-1], ic=extra),
              *(death(list(group), category) for group in DEATH_GROUPS
                for category in BeneficiaryCategory)]  # fmt: skip
    checked = 0
    for event in events:
        whole = event.model_dump(mode="json") | {"province_code": "79", "commune_code": "26734"}
        tasks, chosen = expand(event, "79", "26734", NOW)
        for (_, task), step in zip(tasks, chosen.steps, strict=True):
            expected = {}
            for name in step.fields:
                head, _, rest = name.partition(".")
                value = whole[head].get(rest) if rest and whole[head] else whole.get(head)
                if value is not None:
                    expected[name] = str(value)
            assert task.fields == expected
            checked += 1
    assert checked >= 5, "births and deaths with several steps were checked"


# ---- deadlines in working days --------------------------------------------------------------
def nth_working_day_after(start: date, n: int) -> date:
    """Independent of the hub: the calendar straight from the holidays package."""
    vn = holidays.country_holidays("VN", years=range(start.year, start.year + 2))
    day, counted = start, 0
    while counted < n:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in vn:
            counted += 1
    return day


def friday_before_tet(year: int) -> date:
    vn = holidays.country_holidays("VN", years=year, language="en_US")  # names: any locale
    first = min(d for d, name in vn.items() if "Lunar New Year" in name)
    day = first - timedelta(days=1)
    while day.weekday() != 4:
        day -= timedelta(days=1)
    return day


def test_a_dossier_received_the_friday_before_tet_is_due_when_the_calendar_says() -> None:
    friday = friday_before_tet(2026)
    received = datetime.combine(friday, time(9, 30), ICT).astimezone(UTC)
    child = TRAFFIC._person(friday - timedelta(days=3))
    event = birth(BIRTH_COMBINATIONS[-1], received_at=received, occurred_at=received,
                  child_id=child.personal_id, child_sex=child.sex,
                  child_date_of_birth=child.date_of_birth)  # fmt: skip
    tasks, _ = expand(event, "79", "26734", NOW)
    assert len(tasks) == 2
    for _, task in tasks:
        days = 2 if task.action is AgencyAction.HEALTH_CARD_ISSUE else 3
        last = nth_working_day_after(friday, days)
        assert last - friday > timedelta(days=7), "Tet pushes the deadline past the holiday"
        assert task.due_at == datetime.combine(last + timedelta(days=1), time(0), ICT)
        basis = task.deadline_basis or ""
        assert "2026" in basis and "holidays" in basis, "the calendar year is in the task"
        # Overdue flips at that moment, not an hour after the hub processed it.
        state, _ = cases.on_task(None, task)
        assert cases.status(state, task.due_at - timedelta(seconds=1)) == "open"
        assert cases.status(state, task.due_at) == "overdue"


@pytest.mark.parametrize("year", [2027, 2028, 2029])
@pytest.mark.parametrize("days", [0, 2, 3, 5, 12])
def test_working_day_deadlines_follow_the_package_calendar(year: int, days: int) -> None:
    friday = friday_before_tet(year)
    received = datetime.combine(friday, time(16, 59), ICT)
    last = nth_working_day_after(friday, days) if days else friday
    assert calendar.due_at(received, days) == datetime.combine(
        last + timedelta(days=1), time(0), ICT
    )


# ---- outcomes ---------------------------------------------------------------------------
def ack(task: Any, outcome: AckOutcome, note: str | None = None) -> AgencyAcknowledgement:
    return AgencyAcknowledgement(case_id=task.case_id, task_id=task.task_id, agency=task.agency,
                                 outcome=outcome, acknowledged_at=NOW, note=note)  # fmt: skip


def run(tasks: list[Any], acks: list[AgencyAcknowledgement]) -> tuple[cases.CaseState, list[Any]]:
    state: cases.CaseState | None = None
    notes: list[Any] = []
    for task in tasks:
        state, new = cases.on_task(state, task)
        notes += new
    for a in acks:
        state, new = cases.on_ack(state, a)
        notes += new
    assert state is not None
    return state, notes


def test_a_case_is_completed_only_when_every_chosen_step_is_done() -> None:
    tasks = [t for _, t in expand(birth(BIRTH_COMBINATIONS[-1]), "79", "26734", NOW)[0]]
    state, _ = cases.on_task(None, tasks[0])  # the sibling task is still on its way
    state, _ = cases.on_ack(state, ack(tasks[0], AckOutcome.DONE))
    assert cases.status(state, NOW) == "open", "the other chosen step is pending"
    state, notes = run(tasks, [ack(t, AckOutcome.DONE) for t in tasks])
    assert cases.status(state, NOW) == "completed"
    assert [n.state for n in notes] == ["OPEN", "DONE", "DONE", "COMPLETED"]


def test_a_rejection_closes_the_case_as_rejected_and_tells_the_citizen_why() -> None:
    tasks = [t for _, t in expand(birth(BIRTH_COMBINATIONS[-1]), "79", "26734", NOW)[0]]
    reason = "Địa chỉ thường trú không tồn tại"
    state, notes = run(tasks, [ack(tasks[0], AckOutcome.REJECTED, reason)])
    assert cases.status(state, NOW) == "rejected"
    rows = {r[1]: r for r in cases.step_rows(state)}
    assert rows[tasks[0].task_id][4:6] == ("REJECTED", reason)
    assert rows[tasks[1].task_id][4] == "PENDING"
    step_note, case_note = notes[-2:]
    assert (step_note.state, step_note.reason, step_note.step) == (
        "REJECTED", reason, tasks[0].action.value)  # fmt: skip
    assert case_note.state == "REJECTED" and case_note.step is None
    assert reason in step_note.message_vi and "LT-000123" in case_note.message_vi
    assert cases.store_row(state, NOW)[6] == "rejected"


def test_needs_supplement_is_not_the_agencys_delay_and_is_notified() -> None:
    tasks = [t for _, t in expand(birth(BIRTH_COMBINATIONS[-1]), "79", "26734", NOW)[0]]
    state, notes = run(tasks, [ack(t, AckOutcome.NEEDS_SUPPLEMENT, "Thiếu giấy chứng sinh")
                               for t in tasks])  # fmt: skip
    late = max(t.due_at for t in tasks) + timedelta(days=1)
    assert cases.status(state, late) == "open"
    assert notes[-1].state == "NEEDS_SUPPLEMENT" and "bổ sung" in notes[-1].message_vi
    state, _ = cases.on_ack(state, ack(tasks[0], AckOutcome.DONE))
    state, _ = cases.on_ack(state, ack(tasks[1], AckOutcome.DONE))
    assert cases.status(state, late) == "completed"


def test_a_redelivered_acknowledgement_notifies_once() -> None:
    tasks = [t for _, t in expand(birth([BirthProcedure.HEALTH_INSURANCE_CARD]), "79", "26734",
                                  NOW)[0]]  # fmt: skip
    _, notes = run(tasks, [ack(tasks[0], AckOutcome.DONE)] * 2)
    assert [n.state for n in notes] == ["OPEN", "DONE", "COMPLETED"]


def test_an_acknowledgement_may_overtake_its_task() -> None:
    tasks = [t for _, t in expand(death([DeathProcedure.RESIDENCE_REMOVAL]), "79", "26734",
                                  NOW)[0]]  # fmt: skip
    state, _ = cases.on_ack(None, ack(tasks[0], AckOutcome.DONE))
    assert cases.status(state, NOW) == "waiting"
    state, notes = cases.on_task(state, tasks[0])
    assert cases.status(state, NOW) == "completed"
    # What the citizen hears when the task comes first: the step's outcome included.
    in_order, first = cases.on_task(None, tasks[0])
    _, then = cases.on_ack(in_order, ack(tasks[0], AckOutcome.DONE))
    assert [n.state for n in notes] == [n.state for n in first + then] == [
        "OPEN", "DONE", "COMPLETED"]  # fmt: skip
    assert [n.notification_id for n in notes] == [n.notification_id for n in first + then]


def test_v1_and_v2_births_still_decode_and_mean_registration_only() -> None:
    """Old writers (no choice, no origin) keep working: registration only, no case."""
    codec = Codec()
    event = birth(None)
    record = event.to_avro()
    for version in ("v1", "v2"):
        old = _load(codec.current[BirthRegistration.SCHEMA].path.parent
                    / f"history/civil_birth.{version}.avsc")  # fmt: skip
        fields = {f["name"] for f in old.raw["fields"]}
        _, decoded = codec.decode(Codec.encode_with(old, {k: v for k, v in record.items()
                                                          if k in fields}))  # fmt: skip
        again = BirthRegistration.model_validate(decoded)
        assert again.origin is RecordOrigin.LIVE and again.interconnection is None
        assert plan(again).skipped == ["registration_only"]
    assert BirthInterconnection.model_fields and DeathInterconnection.model_fields


def test_an_answer_on_another_agencys_topic_is_refused_and_closes_nothing() -> None:
    tasks = [t for _, t in expand(birth(BIRTH_COMBINATIONS[-1]), "79", "26734", NOW)[0]]
    card = next(t for t in tasks if t.agency is Agency.SOCIAL_INSURANCE)
    state, _ = run(tasks, [])
    with pytest.raises(cases.WrongAgency):
        cases.on_ack(state, ack(card, AckOutcome.DONE), from_agency=Agency.POLICE.value)
    forged = AgencyAcknowledgement(case_id=card.case_id, task_id=card.task_id,
                                   agency=Agency.POLICE, outcome=AckOutcome.DONE,
                                   acknowledged_at=NOW)  # fmt: skip
    with pytest.raises(cases.WrongAgency):  # naming itself the police does not help
        cases.on_ack(state, forged, from_agency=Agency.POLICE.value)
    state, _ = cases.on_ack(state, ack(card, AckOutcome.DONE), Agency.SOCIAL_INSURANCE.value)
    assert state["steps"][card.task_id]["state"] == "DONE"


def test_a_forged_answer_that_overtakes_its_task_is_voided_when_the_task_arrives() -> None:
    tasks = [t for _, t in expand(birth([BirthProcedure.HEALTH_INSURANCE_CARD]), "79", "26734",
                                  NOW)[0]]  # fmt: skip
    forged = AgencyAcknowledgement(case_id=tasks[0].case_id, task_id=tasks[0].task_id,
                                   agency=Agency.POLICE, outcome=AckOutcome.DONE,
                                   acknowledged_at=NOW)  # fmt: skip
    state, _ = cases.on_ack(None, forged, from_agency=Agency.POLICE.value)
    state, _ = cases.on_task(state, tasks[0])
    assert cases.status(state, NOW) == "open"


def test_a_forged_answer_that_overtook_its_task_cannot_complete_the_case() -> None:
    """The police answer DONE for the insurance step before any task came. When the police task
    comes first and the police really answer, the case must not complete on the forged step:
    it waits for the insurance task, which voids the forged answer."""
    police, card = [t for _, t in expand(birth([BirthProcedure.RESIDENCE_REGISTRATION,
                                                 BirthProcedure.HEALTH_INSURANCE_CARD]),
                                          "79", "26734", NOW)[0]]  # fmt: skip
    forged = AgencyAcknowledgement(case_id=card.case_id, task_id=card.task_id,
                                   agency=Agency.POLICE, outcome=AckOutcome.DONE,
                                   acknowledged_at=NOW)  # fmt: skip
    state, _ = cases.on_ack(None, forged, from_agency=Agency.POLICE.value)
    state, _ = cases.on_task(state, police)
    state, notes = cases.on_ack(state, ack(police, AckOutcome.DONE), Agency.POLICE.value)
    assert state["status"] == cases.OPEN and "COMPLETED" not in [n.state for n in notes]
    state, _ = cases.on_task(state, card)
    assert state["status"] == cases.OPEN
    assert state["steps"][card.task_id]["state"] == "PENDING"
    # Came after the case opened, before the insurance task: the citizen is not told of it.
    opened, _ = cases.on_task(None, police)
    _, notes = cases.on_ack(opened, forged, from_agency=Agency.POLICE.value)
    assert notes == []


def test_an_answer_that_overtook_its_task_closes_the_case_when_the_task_comes() -> None:
    police, card = [t for _, t in expand(birth([BirthProcedure.RESIDENCE_REGISTRATION,
                                                 BirthProcedure.HEALTH_INSURANCE_CARD]),
                                          "79", "26734", NOW)[0]]  # fmt: skip
    late = NOW + timedelta(hours=2)
    early = ack(card, AckOutcome.DONE).model_copy(update={"acknowledged_at": late})
    state, _ = cases.on_ack(None, early, Agency.SOCIAL_INSURANCE.value)
    state, _ = cases.on_task(state, police)
    state, _ = cases.on_ack(state, ack(police, AckOutcome.DONE), Agency.POLICE.value)
    assert state["status"] == cases.OPEN, "the insurance task has not come"
    state, notes = cases.on_task(state, card)
    assert state["status"] == cases.COMPLETED
    assert state["closed_at"] == late.isoformat() and notes[-1].at == late


def test_an_answer_for_a_task_the_case_does_not_have_is_refused_or_dropped() -> None:
    """A case knows its tasks from the first one: an answer naming another task id is refused
    once the case is open, and dropped from it (the worker dead-letters it) if it came before."""
    police, card = [t for _, t in expand(birth([BirthProcedure.RESIDENCE_REGISTRATION,
                                                 BirthProcedure.HEALTH_INSURANCE_CARD]),
                                          "79", "26734", NOW)[0]]  # fmt: skip
    made_up = ack(police, AckOutcome.REJECTED).model_copy(update={"task_id": "x:MADE_UP"})
    state, _ = cases.on_ack(None, made_up, Agency.POLICE.value)
    state, _ = cases.on_task(state, police)
    assert set(state["steps"]) == {police.task_id, card.task_id}
    with pytest.raises(cases.UnknownStep):
        cases.on_ack(state, made_up, Agency.POLICE.value)


def test_a_case_rejected_by_its_agency_gives_the_citizen_that_agency_s_reason() -> None:
    """A forged rejection (the police, for the insurance step, before its task) must not lend
    its reason to the case the police's own rejection closes."""
    police, card = [t for _, t in expand(birth([BirthProcedure.RESIDENCE_REGISTRATION,
                                                 BirthProcedure.HEALTH_INSURANCE_CARD]),
                                          "79", "26734", NOW)[0]]  # fmt: skip
    forged = AgencyAcknowledgement(case_id=card.case_id, task_id=card.task_id,
                                   agency=Agency.POLICE, outcome=AckOutcome.REJECTED,
                                   acknowledged_at=NOW, note="lý do giả")  # fmt: skip
    state, _ = cases.on_ack(None, forged, from_agency=Agency.POLICE.value)
    state, _ = cases.on_task(state, police)
    state, notes = cases.on_ack(state, ack(police, AckOutcome.REJECTED, "Địa chỉ không đúng"),
                                Agency.POLICE.value)  # fmt: skip
    assert state["status"] == cases.REJECTED
    assert notes[-1].state == "REJECTED" and notes[-1].reason == "Địa chỉ không đúng"
