"""Interconnected procedures on the real broker (issue 13): live registrations fan out to
exactly the steps the applicant chose and the rules allow; agencies answer DONE, REJECTED or
NEEDS_SUPPLEMENT; the store keeps each step; citizens are notified; digitised records and v1
writers open nothing."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.ingest.importer import import_file
from hub.domain.enums import BeneficiaryCategory, BirthProcedure, DeathProcedure, RecordOrigin
from hub.domain.events import BirthRegistration, DeathRegistration, SourceEvent
from hub.domain.records import (
    AckOutcome,
    Agency,
    AgencyAcknowledgement,
    AgencyAction,
    AgencyTask,
    CaseNotification,
    DeadLetter,
)
from hub.domain.topics import (
    NOTIFICATION_TOPIC,
    AgencyTopic,
    SourceTopic,
    ack_topic_of,
    dead_letter_topic,
)
from hub.domain.workflows import expand
from hub.kafka.admin import committed_offsets, end_offsets, topic_config
from hub.kafka.client import Connectable
from hub.settings import Settings
from hub.sim.simulator import produce
from hub.sim.traffic import Message, Traffic
from hub.wire.codec import Codec, CodecError
from tests.integration.test_pipeline import read_all
from tests.integration.workers import (
    WorkerProcess,
    sqlite_rows,
    traffic_for_new_group,
    until,
)

pytestmark = pytest.mark.integration
TASK_TOPICS = [t.value for t in AgencyTopic if t is not AgencyTopic.ACK]
PAYER = {BeneficiaryCategory.SOCIAL_INSURANCE: Agency.SOCIAL_INSURANCE,
         BeneficiaryCategory.SOCIAL_PROTECTION: Agency.COMMUNE_PEOPLES_COMMITTEE,
         BeneficiaryCategory.MERITORIOUS: Agency.PROVINCIAL_HOME_AFFAIRS}  # fmt: skip


def expected_steps(event: SourceEvent) -> set[tuple[AgencyAction, Agency]]:
    """What the decree's groups give for this event, derived here from its choice (the rules
    of docs/WORKFLOWS.md: newborns are under 6, the simulator's households are private)."""
    if not isinstance(event, BirthRegistration | DeathRegistration) or not event.interconnection:
        return set()
    if isinstance(event, BirthRegistration):
        return {
            (AgencyAction.RESIDENCE_REGISTRATION, Agency.POLICE)
            if p is BirthProcedure.RESIDENCE_REGISTRATION
            else (AgencyAction.HEALTH_CARD_ISSUE, Agency.SOCIAL_INSURANCE)
            for p in event.interconnection.procedures
        }
    category = event.interconnection.beneficiary_category
    steps = set()
    for p in event.interconnection.procedures:
        if p is DeathProcedure.RESIDENCE_REMOVAL:
            steps.add((AgencyAction.RESIDENCE_REMOVAL, Agency.POLICE))
        elif category in PAYER and not (
            category is BeneficiaryCategory.SOCIAL_PROTECTION
            and p is DeathProcedure.SURVIVOR_BENEFIT
        ):
            steps.add((AgencyAction[p.value], PAYER[category]))
    return steps


def skipped_counts(metrics: str) -> dict[tuple[str, str], float]:
    """hub_interconnection_skipped_total by (workflow, reason)."""
    return {(s.labels["workflow"], s.labels["reason"]): s.value
            for f in text_string_to_metric_families(metrics) for s in f.samples
            if s.name == "hub_interconnection_skipped_total"}  # fmt: skip


def open_cases(metrics: str) -> float:
    """hub_interconnection_cases_open summed over its workflows (a case reopened by a late
    answer has no workflow yet)."""
    return sum(s.value for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name == "hub_interconnection_cases_open")  # fmt: skip


def answer(task: AgencyTask, outcome: AckOutcome, note: str | None = None,
           topic: str | None = None) -> Message:  # fmt: skip
    ack = AgencyAcknowledgement(
        case_id=task.case_id, task_id=task.task_id, agency=task.agency, outcome=outcome,
        acknowledged_at=datetime.now(UTC), note=note,
    )  # fmt: skip
    return Message(topic or ack_topic_of(task.agency.value), str(task.case_id).encode(),
                   Codec().encode(AgencyAcknowledgement.SCHEMA, ack.to_avro()), None)  # fmt: skip


async def tasks_of(bootstrap: Connectable, codec: Codec, triggers: set[Any], at_least: int,
                   wait_s: float = 180) -> dict[str, AgencyTask]:  # fmt: skip
    found: dict[str, AgencyTask] = {}
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for r in await read_all(bootstrap, TASK_TOPICS, idle_ms=1000):
            try:  # other tests' probes of the ACLs are not tasks
                task = AgencyTask.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
            except CodecError:
                continue
            if task.trigger_event_id in triggers:
                found.setdefault(task.task_id, task)
        if len(found) >= at_least:
            break
    return found


async def test_live_registrations_fan_out_the_chosen_steps_and_outcomes_reach_the_citizen(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "cases", codec, 3, 600)
    events: list[SourceEvent] = [traffic.event(SourceTopic.BIRTH) for _ in range(100)]
    events += [traffic.event(SourceTopic.DEATH) for _ in range(100)]
    # One birth whose dossier was received 30 days ago: its steps are overdue on arrival.
    late = next(e for e in events if isinstance(e, BirthRegistration) and e.interconnection
                and len(e.interconnection.procedures) == 2)  # fmt: skip
    assert late.interconnection is not None
    events[events.index(late)] = late = late.model_copy(update={
        "interconnection": late.interconnection.model_copy(
            update={"received_at": datetime.now(UTC) - timedelta(days=30)})})  # fmt: skip
    await produce(bootstrap, (traffic.message(e) for e in events))
    by_id = {e.event_id: e for e in events}
    want = {(e.event_id, a, ag) for e in events for a, ag in expected_steps(e)}
    assert len(want) > 150, "the simulated mix chooses interconnected procedures"

    worker = WorkerProcess(tmp_path / "w", group)
    worker.start()
    try:
        tasks = await tasks_of(bootstrap, codec, set(by_id), len(want))
        got = {(t.trigger_event_id, t.action, t.agency) for t in tasks.values()}
        assert got == want, "exactly the chosen steps, to the agencies that perform them"
        for task in tasks.values():
            event = by_id[task.trigger_event_id]
            assert event.interconnection is not None  # type: ignore[attr-defined]
            assert task.dossier_code == event.interconnection.dossier_code  # type: ignore[attr-defined]
            assert task.due_at > event.interconnection.received_at  # type: ignore[attr-defined]
            assert re.search(r"working days from \d{4}-\d\d-\d\d", task.deadline_basis or "")
        skipped_births = sum(1 for e in events if isinstance(e, BirthRegistration)
                             and e.interconnection is None)  # fmt: skip

        # Agencies: all DONE, except the late birth's (held back: overdue) and one rejection.
        held = {t.task_id for t in tasks.values() if t.trigger_event_id == late.event_id}
        rejected = next(t for t in tasks.values() if t.agency is Agency.POLICE
                        and t.task_id not in held)  # fmt: skip
        reason = "Địa chỉ thường trú không đúng"
        acks = [
            answer(t, AckOutcome.REJECTED, reason) if t is rejected else answer(t, AckOutcome.DONE)
            for t in tasks.values() if t.task_id not in held
        ]  # fmt: skip
        # A forged answer: the late birth's card task "done", on the police's own topic.
        card = next(t for t in tasks.values()
                    if t.task_id in held and t.agency is Agency.SOCIAL_INSURANCE)  # fmt: skip
        acks.append(answer(card, AckOutcome.DONE, topic=ack_topic_of(Agency.POLICE.value)))
        await produce(bootstrap, acks)

        cases_with_tasks = {t.case_id for t in tasks.values()}
        expected_status = {"completed": len(cases_with_tasks) - 2, "rejected": 1, "overdue": 1}
        status: dict[str, int] = {}
        for _ in range(120):
            rows = worker.query("SELECT status, count(*) FROM interconnection_cases GROUP BY 1")
            status = {str(k): int(str(v)) for k, v in rows}
            if status == expected_status:
                break
            time.sleep(1)
        assert status == expected_status, "the forged answer closed nothing"
        late_steps = worker.query(f"SELECT state FROM case_steps WHERE task_id = '{card.task_id}'")
        assert late_steps == [("PENDING",)]
        letters = [DeadLetter.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
                   for r in await read_all(bootstrap, [dead_letter_topic(
                       ack_topic_of(Agency.POLICE.value))], idle_ms=1000)]  # fmt: skip
        assert any(d.reason == "ack_wrong_agency" and card.task_id in d.detail for d in letters)
        step = worker.query(f"SELECT state, reason FROM case_steps "
                            f"WHERE task_id = '{rejected.task_id}'")  # fmt: skip
        assert step == [("REJECTED", reason)]
        notes = [
            CaseNotification.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
            for r in await read_all(bootstrap, [NOTIFICATION_TOPIC], idle_ms=1500)
        ]
        mine = [n for n in notes if n.case_id == rejected.case_id]
        assert {n.state for n in mine} >= {"OPEN", "REJECTED"}
        assert any(n.reason == reason and reason in n.message_vi for n in mine)
        metrics = worker.metrics_text() or ""
        assert 'hub_interconnection_cases_overdue{workflow="birth"} 1.0' in metrics
        assert skipped_counts(metrics).get(("birth", "registration_only")) == skipped_births
    finally:
        worker.stop()


def historic_birth(traffic: Traffic, born: date) -> BirthRegistration:
    """A birth from a 1978–1999 civil-status book, as the province digitises it."""
    event: BirthRegistration = traffic.event(SourceTopic.BIRTH)  # type: ignore[assignment]
    child = traffic._person(born)
    registered = datetime(born.year, born.month, born.day, 8, 0, tzinfo=UTC) + timedelta(days=9)
    return event.model_copy(update={
        "child_id": child.personal_id, "child_sex": child.sex, "child_date_of_birth": born,
        "occurred_at": registered, "interconnection": None, "mother_id": None,
        "origin": RecordOrigin.DIGITISED,
    })  # fmt: skip


async def test_digitised_books_open_no_case_through_import_or_kafka(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    """Issue 13's finding: 100 digitised births from 1978–1999 produced 200 agency tasks."""
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "books", codec, 2, 300)
    days = (date(1999, 12, 31) - date(1978, 1, 1)).days
    births = [historic_birth(traffic, date(1978, 1, 1) + timedelta(days=i * days // 200))
              for i in range(200)]  # fmt: skip
    straight, from_csv = births[:100], births[100:]
    deaths = [
        traffic.event(SourceTopic.DEATH).model_copy(
            update={"origin": RecordOrigin.DIGITISED, "interconnection": None}
        )
        for _ in range(50)
    ]
    await produce(bootstrap, (traffic.message(e) for e in [*straight, *deaths]))
    path = tmp_path / "so-khai-sinh-1978-1999.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        rows = [
            json.loads(e.model_dump_json(exclude={"origin", "interconnection"})) for e in from_csv
        ]  # fmt: skip  (the book has no origin column)
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    state = await import_file(path, "civil.birth", bootstrap)
    assert (state.produced, state.rejected) == (100, 0)

    ids = [str(e.event_id) for e in [*births, *deaths]]
    worker = WorkerProcess(tmp_path / "w", group)
    worker.start()
    try:
        assert worker.wait_stored(ids) == 250, "every record is stored"
        tasks = await tasks_of(bootstrap, codec, {e.event_id for e in [*births, *deaths]}, 1,
                               wait_s=5)  # fmt: skip
        metrics = worker.metrics_text() or ""
    finally:
        worker.stop()
    assert tasks == {}, "no agency task for a digitised record"
    assert worker.query("SELECT count(*) FROM interconnection_cases") == [(0,)]
    assert skipped_counts(metrics).get(("birth", "digitised")) == 200
    assert skipped_counts(metrics).get(("death", "digitised")) == 50


def two_step_births(traffic: Traffic, count: int) -> list[BirthRegistration]:
    """``count`` live births whose parents chose both procedures (two tasks a case)."""
    births: list[BirthRegistration] = []
    while len(births) < count:
        event = traffic.event(SourceTopic.BIRTH)
        if isinstance(event, BirthRegistration) and len(expected_steps(event)) == 2:
            births.append(event)
    return births


async def wait_committed(bootstrap: Connectable, group: str, topics: list[str],
                         timeout: float = 60) -> None:  # fmt: skip
    """Until ``group`` committed every partition of ``topics`` up to its end."""
    ends = {tp: end for tp, end in (await end_offsets(bootstrap, topics)).items() if end > 0}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await committed_offsets(bootstrap, group, set(topics))
        if all(done.get(tp, 0) >= end for tp, end in ends.items()):
            return
        time.sleep(0.5)
    raise AssertionError(f"{group} did not commit {topics} to their end")


async def test_case_state_outlives_a_killed_worker(kafka_broker: Settings, tmp_path: Path) -> None:
    """Births choosing both procedures: the first worker takes every task into its case and
    commits past them, then is SIGKILLed; the police answer, and a second worker (same group,
    same store) must still know each case's other step is pending. A worker that had lost the
    case state would know only the answered step and call the case completed."""
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "case-kill", codec, 3, 400)
    births = two_step_births(traffic, 30)
    await produce(bootstrap, (traffic.message(e) for e in births))
    first = WorkerProcess(tmp_path / "w", group)
    first.start()
    try:
        tasks = await tasks_of(bootstrap, codec, {e.event_id for e in births}, 60)
        assert len(tasks) == 60
        await wait_committed(bootstrap, group, TASK_TOPICS)  # the cases are past the topics
    finally:
        first.kill()
    police = [t for t in tasks.values() if t.agency is Agency.POLICE]
    await produce(bootstrap, [answer(t, AckOutcome.DONE) for t in police])

    second = WorkerProcess(tmp_path / "w", group)
    second.start()
    try:
        ids = ",".join(f"'{t.case_id}'" for t in police)
        card = Agency.SOCIAL_INSURANCE.value
        rows: list[tuple[object, ...]] = []
        waiting = 0
        for _ in range(120):
            rows = second.query(f"SELECT workflow, status, pending FROM interconnection_cases "
                                f"WHERE case_id IN ({ids})")  # fmt: skip
            steps = second.query(f"SELECT state, count(*) FROM case_steps WHERE case_id IN "
                                 f"({ids}) GROUP BY 1 ORDER BY 1")  # fmt: skip
            # open, or overdue when the dossier was received long enough ago: not completed
            waiting = sum(
                1
                for wf, status, pending in rows
                if wf == "birth" and status in ("open", "overdue") and pending == card
            )
            if waiting == len(police) and steps == [("DONE", 30), ("PENDING", 30)]:
                break
            time.sleep(1)
        assert waiting == len(police) == 30, f"each case still waits for its card: {rows}"
        assert steps == [("DONE", 30), ("PENDING", 30)]
        # Every card issued: the cases close, go to the store and leave the worker's table.
        cards = [t for t in tasks.values() if t.agency is Agency.SOCIAL_INSURANCE]
        await produce(bootstrap, [answer(t, AckOutcome.DONE) for t in cards])
        for _ in range(120):
            rows = second.query(f"SELECT status, count(*) FROM interconnection_cases "
                                f"WHERE case_id IN ({ids}) GROUP BY 1")  # fmt: skip
            if rows == [("completed", 30)]:
                break
            time.sleep(1)
        assert rows == [("completed", 30)]
    finally:
        second.stop()
    await closed_cases_stay_closed(bootstrap, tmp_path, group, police, ids)


async def closed_cases_stay_closed(bootstrap: Connectable, tmp_path: Path, group: str,
                                   police: list[AgencyTask], ids: str) -> None:  # fmt: skip
    """The closed cases are tombstones in the case table's changelog (a restarted worker
    recovers none of them), and answers redelivered to a restarted worker find them closed in
    the store instead of opening them again as unknown cases."""
    changelog = await read_all(bootstrap, [f"{group}-cases-changelog"], idle_ms=1500)
    last = {r.key: r.value for r in changelog}  # type: ignore[attr-defined]
    assert {last.get(str(t.case_id).encode(), b"absent") for t in police} == {None}
    config = await topic_config(bootstrap, f"{group}-cases-changelog")
    assert config["cleanup.policy"] == "compact" and config["segment.ms"] == "3600000"
    third = WorkerProcess(tmp_path / "w", group)
    third.start()
    try:
        await produce(bootstrap, [answer(t, AckOutcome.DONE) for t in police])
        await wait_committed(bootstrap, group, [ack_topic_of(Agency.POLICE.value)])
        time.sleep(3)  # a report interval: a reopened case would be stored by now
        rows = third.query(f"SELECT status, count(*) FROM interconnection_cases "
                           f"WHERE case_id IN ({ids}) GROUP BY 1")  # fmt: skip
        assert rows == [("completed", 30)]
        assert 'hub_interconnection_cases_open{workflow="birth"} 0.0' in (third.metrics_text()
                                                                         or "")  # fmt: skip
    finally:
        third.stop()


def case_statuses(db: Path, ids: str) -> list[tuple[object, ...]]:
    """How many of the cases ``ids`` are completed, rejected or still open (open or overdue)
    in the SQLite store ``db`` (shared by workers)."""
    return sqlite_rows(db, "SELECT CASE WHEN status IN ('completed', 'rejected') THEN status "
                           "ELSE 'pending' END, count(*) FROM interconnection_cases "
                           f"WHERE case_id IN ({ids}) GROUP BY 1 ORDER BY 1")  # fmt: skip


async def until_statuses(db: Path, ids: str, wanted: list[tuple[object, ...]],
                         timeout: float = 180) -> list[tuple[object, ...]]:  # fmt: skip
    return await until(lambda: case_statuses(db, ids), wanted.__eq__, timeout)


async def test_two_workers_close_cases_and_the_survivor_keeps_them_closed(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    """Two live workers share the cases (each holds the case partitions it was given) and one
    store. Half the cases close while both run: each worker stores its closed cases and drops
    them from its table. Then one worker is SIGKILLed; the survivor takes its partitions (its
    open cases recovered from the changelog, its closed ones as tombstones). The remaining
    answers close the rest, and every answer of the closed half, delivered again, finds its case
    closed in the store — whichever worker closed it — and opens nothing."""
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "case-pair", codec, 3, 400)
    births = two_step_births(traffic, 30)
    db = tmp_path / "shared.sqlite3"
    env = {"HUB_STORE_URL": f"sqlite:///{db}"}
    first, second = (WorkerProcess(tmp_path / f"w{i}", group, env) for i in range(2))
    first.start()
    second.start()
    try:
        await produce(bootstrap, (traffic.message(e) for e in births))
        tasks = await tasks_of(bootstrap, codec, {e.event_id for e in births}, 60)
        assert len(tasks) == 60
        case_ids = sorted({str(t.case_id) for t in tasks.values()})
        early = set(case_ids[:15])  # these close while both workers run
        closing = [t for t in tasks.values()
                   if t.agency is Agency.POLICE or str(t.case_id) in early]  # fmt: skip
        await produce(bootstrap, [answer(t, AckOutcome.DONE) for t in closing])
        ids = ",".join(f"'{c}'" for c in case_ids)
        rows = await until_statuses(db, ids, [("completed", 15), ("pending", 15)])
        assert rows == [("completed", 15), ("pending", 15)], rows
        ack_topics = [ack_topic_of(a.value) for a in (Agency.POLICE, Agency.SOCIAL_INSURANCE)]
        await wait_committed(bootstrap, group, ack_topics)
        first.kill()  # its open cases live on in the changelog, its closed ones in the store

        rest = [t for t in tasks.values()
                if t.agency is Agency.SOCIAL_INSURANCE and str(t.case_id) not in early]  # fmt: skip
        again = [answer(t, AckOutcome.DONE) for t in closing if str(t.case_id) in early]
        await produce(bootstrap, [*again, *(answer(t, AckOutcome.DONE) for t in rest)])
        rows = await until_statuses(db, ids, [("completed", 30)])
        assert rows == [("completed", 30)], rows
        await wait_committed(bootstrap, group, ack_topics, timeout=120)
        time.sleep(3)  # report intervals: a reopened case would be stored and counted by now
        assert case_statuses(db, ids) == [("completed", 30)]
        conn = sqlite3.connect(db, timeout=30)
        try:
            steps = conn.execute(f"SELECT state, count(*) FROM case_steps WHERE case_id IN "
                                 f"({ids}) GROUP BY 1").fetchall()  # fmt: skip
        finally:
            conn.close()
        assert steps == [("DONE", 60)]
        assert second.alive(), second.tail()
        metrics = second.metrics_text() or ""
        assert open_cases(metrics) == 0  # of any workflow
        assert "hub_interconnection_cases_waiting 0.0" in metrics  # no answer made a case anew
    finally:
        first.kill()
        second.stop()
    changelog = await read_all(bootstrap, [f"{group}-cases-changelog"], idle_ms=1500)
    last = {r.key: r.value for r in changelog}  # type: ignore[attr-defined]
    assert {last.get(c.encode(), b"absent") for c in case_ids} == {None}  # all tombstones


async def test_answers_to_cases_never_opened_reach_the_dead_letter_topic_and_leave_the_worker(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    """An agency's system answers for case ids the hub never issued (a bug, or a hostile
    system flooding the hub): each answer waits for its task a while (HUB_CASE_ANSWER_WAIT_S),
    then goes untouched to its dead-letter topic, the case leaves the worker (no waiting case in
    its gauge, a tombstone in the table's changelog) and the store row says ``unmatched``."""
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "stray", codec, 1, 60)
    births = two_step_births(traffic, 3)
    now = datetime.now(UTC)
    police = [task for e in births for _, task in expand(e, e.province_code, e.commune_code, now)[0]
              if task.agency is Agency.POLICE]  # fmt: skip
    made_up = [t.model_copy(update={"case_id": uuid.uuid4()}) for t in police]  # never issued
    answers = [answer(t, AckOutcome.DONE) for t in made_up]
    await produce(bootstrap, answers)
    worker = WorkerProcess(tmp_path / "w", group, {"HUB_CASE_ANSWER_WAIT_S": "3"})
    worker.start()
    ids = ",".join(f"'{t.case_id}'" for t in made_up)
    sql = f"SELECT status, count(*) FROM interconnection_cases WHERE case_id IN ({ids}) GROUP BY 1"
    try:
        rows = await until(lambda: sqlite_rows(worker.store_path, sql),
                           [("unmatched", 3)].__eq__, 90)  # fmt: skip
        metrics = worker.metrics_text() or ""
    finally:
        worker.stop()
    assert rows == [("unmatched", 3)], rows
    waiting = [s.value for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name == "hub_interconnection_cases_waiting"]  # fmt: skip
    assert waiting == [0.0]
    dlq = dead_letter_topic(ack_topic_of(Agency.POLICE.value))
    letters = [DeadLetter.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
               for r in await read_all(bootstrap, [dlq], idle_ms=1000)]  # fmt: skip
    ours = {bytes(m.value or b""): m for m in answers}
    mine = [d for d in letters if d.original_value in ours]
    assert len(mine) == 3 and {d.reason for d in mine} == {"ack_without_task"}
    assert {d.original_key for d in mine} == {m.key for m in answers}
