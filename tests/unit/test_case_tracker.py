"""The worker's case tracking without faust or Kafka: a chunk of agency tasks and answers goes
in, case state (written once per case), notifications and dead letters come out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from hub.domain import cases as case_logic
from hub.domain.events import BirthRegistration
from hub.domain.records import (
    AckOutcome,
    Agency,
    AgencyAcknowledgement,
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
from hub.metrics import HubMetrics
from hub.sim.traffic import Traffic
from hub.store.sql import Connection
from hub.stream.cases import MAX_WAITING_ANSWERS, CaseTracker, report_cases
from hub.stream.retry import StoreFailed, StoreRetry
from hub.types import Incoming
from hub.wire.codec import Codec
from tests.conftest import samples

CODEC = Codec()
NOW = datetime.now(UTC)


class Out:
    """The outbox: what was added, in Kafka once flushed (or a broker that refuses)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.pending: list[tuple[str, bytes | None, bytes, tuple[Any, ...]]] = []
        self.sent: list[tuple[str, bytes | None, bytes, tuple[Any, ...]]] = []

    async def add(self, topic: str, key: bytes | None, value: bytes,
                  headers: Sequence[tuple[str, bytes | None]] = ()) -> None:  # fmt: skip
        self.pending.append((topic, key, value, tuple(headers)))

    async def flush(self) -> None:
        if self.refuse:
            raise ConnectionError("broker gone")
        self.sent += self.pending
        self.pending.clear()


class Table(dict[bytes, bytes]):
    """A dict counting its writes and deletions (faust's table sends one changelog message for
    each: a value, or a tombstone)."""

    def case(self, key: bytes) -> case_logic.CaseState:
        """The case held under ``key``, as the tracker serialised it."""
        return case_logic.load(self[key])

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.deletions = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.deletions += 1
        super().__delitem__(key)

    def pop(self, key: bytes, *default: Any) -> Any:  # as MutableMapping's: through __delitem__
        if key not in self:
            return default[0] if default else super().pop(key)
        value = self[key]
        del self[key]
        return value


STORE: list[Connection] = []  # the store of the test running (an SQLite file of its own)


@pytest.fixture(autouse=True)
def store(tmp_path: Path) -> Iterator[Connection]:
    STORE[:] = [Connection(f"sqlite:///{tmp_path / 'store.sqlite3'}")]
    yield STORE[0]
    STORE[0]().close()


def tracker(out: Out) -> tuple[CaseTracker, Table, HubMetrics]:
    metrics = HubMetrics.create(CollectorRegistry())
    table = Table()
    retry = StoreRetry(STORE[0], metrics, retries=1, first_delay_s=0)
    return CaseTracker(codec=CODEC, metrics=metrics, out=out, table=table, store=STORE[0],
                       retry=retry, worker_name="t"), table, metrics  # fmt: skip


def stored(query: str) -> list[tuple[Any, ...]]:
    return STORE[0]().query(query)


def two_tasks() -> list[AgencyTask]:
    """The police and social-insurance tasks of one birth that chose both procedures."""
    traffic = Traffic(CODEC, seed=21, provinces=1, population=60, now=NOW)
    for _ in range(500):
        event = traffic.event(SourceTopic.BIRTH)
        assert isinstance(event, BirthRegistration)
        tasks, _ = expand(event, event.province_code, event.commune_code, NOW)
        if len(tasks) == 2:
            return [task for _, task in tasks]
    raise AssertionError("no birth with both procedures in 500")


def task_message(task: AgencyTask, offset: int) -> Incoming:
    topic = (AgencyTopic.RESIDENCE if task.agency is Agency.POLICE
             else AgencyTopic.HEALTH_INSURANCE).value  # fmt: skip
    value = CODEC.encode(AgencyTask.SCHEMA, task.to_avro())
    return Incoming(topic, 0, offset, str(task.case_id).encode(), value)


def answer(task: AgencyTask, offset: int, topic: str | None = None,
           outcome: AckOutcome = AckOutcome.DONE) -> Incoming:  # fmt: skip
    at = NOW + timedelta(minutes=1)
    ack = AgencyAcknowledgement(case_id=task.case_id, task_id=task.task_id, agency=task.agency,
                                outcome=outcome, acknowledged_at=at)  # fmt: skip
    value = CODEC.encode(AgencyAcknowledgement.SCHEMA, ack.to_avro())
    return Incoming(topic or ack_topic_of(task.agency.value), 0, offset,
                    str(task.case_id).encode(), value, (("trace", b"42"),))  # fmt: skip


def notes(out: Out) -> list[CaseNotification]:
    return [CaseNotification.model_validate(CODEC.decode(value)[1])
            for topic, _, value, _ in out.sent if topic == NOTIFICATION_TOPIC]  # fmt: skip


async def test_a_chunk_opens_and_completes_a_case_stored_and_not_kept() -> None:
    """A closed case goes to the store in its chunk and not into the table: the table (memory,
    changelog, recovery at start) holds open cases only."""
    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    await cases.run([task_message(police, 1), task_message(card, 2),
                     answer(police, 3), answer(card, 4)])  # fmt: skip
    assert table.writes == 0 and not table and not cases.open, "four messages, a closed case"
    assert stored("SELECT case_id, status FROM interconnection_cases") == [
        (str(police.case_id), "completed")]  # fmt: skip
    assert sorted(stored("SELECT task_id, state FROM case_steps")) == sorted(
        [(police.task_id, "DONE"), (card.task_id, "DONE")])  # fmt: skip
    states = [n.state for n in notes(out)]
    assert states[0] == "OPEN" and states[-1] == "COMPLETED"
    assert not out.pending, "every output flushed"
    assert cases.changed(NOW) == ([], []), "stored once"


async def test_a_case_closed_in_a_later_chunk_leaves_the_table_with_a_tombstone() -> None:
    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    await cases.run([task_message(police, 1), task_message(card, 2), answer(police, 3)])
    key = str(police.case_id).encode()
    assert key in table and key in cases.open and table.writes == 1
    await cases.run([answer(card, 4, outcome=AckOutcome.REJECTED)])
    assert key not in table and key not in cases.open and table.deletions == 1
    assert stored("SELECT status FROM interconnection_cases") == [("rejected",)]
    await cases.store_changes(NOW + timedelta(days=90))  # the report timer, much later
    assert stored("SELECT status FROM interconnection_cases") == [("rejected",)]


async def test_late_and_replayed_messages_of_a_closed_case_find_it_in_the_store() -> None:
    """The table no longer holds a closed case: a redelivered answer, a replayed task or a late
    answer must find it in the store, not open an unknown case ("waiting") over it."""
    first = Out()
    cases, _, _ = tracker(first)
    police, card = two_tasks()
    await cases.run([task_message(police, 1), task_message(card, 2), answer(police, 3),
                     answer(card, 4)])  # fmt: skip
    again = Out()
    later, later_table, _ = tracker(again)  # another worker, after a rebalance: empty table
    await later.run([answer(police, 3), task_message(card, 2), task_message(police, 1)])
    assert not notes(again), "nothing changed: the citizen hears nothing again"
    assert not later_table and not later.open, "the closed case is not reopened"
    assert stored("SELECT status, pending FROM interconnection_cases") == [("completed", "")]
    await later.run([answer(card, 9, outcome=AckOutcome.NEEDS_SUPPLEMENT)])  # a late change
    assert not later_table and not later.open
    assert stored("SELECT status FROM interconnection_cases") == [("completed",)]
    assert (card.task_id, "NEEDS_SUPPLEMENT") in stored("SELECT task_id, state FROM case_steps")


async def test_closed_cases_left_in_the_table_are_stored_then_removed() -> None:
    """A table recovered from a changelog written before closed cases were removed (or a crash
    between storing a case and removing it): the next report stores them and empties the table
    of them; open cases stay."""
    cases, table, _ = tracker(Out())
    police, _ = two_tasks()
    done, _ = case_logic.on_task(None, police)
    done, _ = case_logic.on_ack(done, AgencyAcknowledgement(
        case_id=police.case_id, task_id=police.task_id, agency=police.agency,
        outcome=AckOutcome.REJECTED, acknowledged_at=NOW))  # fmt: skip
    other = police.model_copy(update={"case_id": uuid4()})
    still, _ = case_logic.on_task(None, other)
    table.update({b"closed": case_logic.dump(done), b"open": case_logic.dump(still)})
    cases.reload()
    assert set(cases.open) == {b"open"}
    await cases.store_changes(NOW)
    assert set(table) == {b"open"} and table.deletions == 1
    rows = stored("SELECT case_id, status FROM interconnection_cases")
    assert rows == [(str(police.case_id), "rejected")], "open ones are stored as they change"


async def test_a_store_that_fails_for_good_keeps_the_case_and_raises() -> None:
    """The closing case cannot be stored: the chunk raises (nothing acknowledged) and the table
    still holds the case as it was, so the replay after the restart starts from it."""
    cases, table, _ = tracker(Out())
    police, card = two_tasks()
    await cases.run([task_message(police, 1), task_message(card, 2)])
    before = dict(table)
    STORE[0]().query("DROP TABLE case_steps")  # the store refuses every case write from now on
    with pytest.raises(StoreFailed):
        await cases.run([answer(police, 3), answer(card, 4)])
    assert table == before and table.deletions == 0


async def test_the_next_chunk_continues_the_case_from_the_table() -> None:
    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    await cases.run([task_message(police, 1), task_message(card, 2)])
    await cases.run([answer(police, 3)])
    state = table.case(str(police.case_id).encode())
    assert case_logic.pending(state) == {card.task_id: Agency.SOCIAL_INSURANCE.value}
    assert case_logic.status(state, NOW) in ("open", "overdue")


async def test_an_answer_on_another_agencys_topic_is_dead_lettered_with_its_headers() -> None:
    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    police_acks = ack_topic_of(Agency.POLICE.value)
    await cases.run([task_message(police, 1), task_message(card, 2),
                     answer(card, 3, topic=police_acks)])  # fmt: skip
    letters = [(topic, DeadLetter.model_validate(CODEC.decode(value)[1]), headers)
               for topic, _, value, headers in out.sent if topic.startswith("dlq.")]  # fmt: skip
    assert len(letters) == 1
    topic, letter, headers = letters[0]
    assert topic == dead_letter_topic(police_acks) and letter.reason == "ack_wrong_agency"
    assert headers == (("trace", b"42"),)
    state = table.case(str(card.case_id).encode())
    assert state["steps"][card.task_id]["state"] == case_logic.PENDING


def letters(out: Out) -> list[tuple[str, DeadLetter, bytes | None]]:
    return [(topic, DeadLetter.model_validate(CODEC.decode(value)[1]), key)
            for topic, key, value, _ in out.sent if topic.startswith("dlq.")]  # fmt: skip


async def test_an_unreadable_message_is_dead_lettered_and_changes_nothing() -> None:
    """Nothing that enters the hub is dropped (DESIGN.md): an agency message that cannot be read
    goes to its dead-letter topic with its bytes, and is counted."""
    out = Out()
    cases, table, metrics = tracker(out)
    await cases.run([Incoming(AgencyTopic.RESIDENCE.value, 0, 7, b"k", b"\x00garbage")])
    assert table.writes == 0 and not notes(out)
    topic = dead_letter_topic(AgencyTopic.RESIDENCE.value)
    [(sent_to, letter, key)] = letters(out)
    assert (sent_to, letter.reason, letter.stage, key) == (topic, "invalid_agency_message",
                                                           "DECODE", b"k")  # fmt: skip
    assert letter.original_value == b"\x00garbage" and letter.original_offset == 7
    assert metrics.dead_letters.labels(topic, "invalid_agency_message")._value.get() == 1


@pytest.mark.parametrize("field", ["note", "task_id", "reference"])
async def test_an_answer_with_a_nul_is_dead_lettered_and_never_reaches_the_store(
    field: str,
) -> None:
    """PostgreSQL refuses a NUL in text: an answer carrying one, stored, would fail the case
    write on every retry and stop every worker that reads it. It is dead-lettered at validation
    and the case goes on as before."""
    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    await cases.run([task_message(police, 1), task_message(card, 2)])
    ack = AgencyAcknowledgement(case_id=police.case_id, task_id=police.task_id,
                                agency=police.agency, outcome=AckOutcome.REJECTED,
                                acknowledged_at=NOW, note="ok", reference="R-1")  # fmt: skip
    record = ack.to_avro() | {field: "bad\x00value"}
    value = CODEC.encode(AgencyAcknowledgement.SCHEMA, record)
    hostile = Incoming(ack_topic_of(police.agency.value), 0, 3, str(police.case_id).encode(),
                       value)  # fmt: skip
    before = dict(table)
    await cases.run([hostile])
    [(_, letter, _)] = letters(out)
    assert (letter.reason, letter.stage) == ("invalid_agency_message", "VALIDATE")
    assert f"{field}: " in letter.detail and "U+0000" in letter.detail
    assert table == before, "the case is as it was"


async def test_a_key_that_cannot_be_a_case_id_is_never_looked_up() -> None:
    """The store lookup takes only keys that are case ids (UUIDs): a hostile key (a NUL, bytes
    that are not text) is not sent to the store, and its message is handled as an unknown case
    would be."""
    out = Out()
    cases, _, _ = tracker(out)
    asked: list[list[str]] = []
    real = STORE[0]()
    lookup = real.closed_cases
    real.closed_cases = lambda ids: asked.append(list(ids)) or lookup(ids)  # type: ignore[method-assign]
    police, _ = two_tasks()
    good = answer(police, 1)
    await cases.run([good, Incoming(good.topic, 0, 2, b"\x00\xff", good.value),
                     Incoming(good.topic, 0, 3, b"not-a-uuid\x00", good.value)])  # fmt: skip
    assert asked == [[str(police.case_id)]]


async def test_a_refused_send_raises_so_the_chunk_is_not_acknowledged() -> None:
    cases, _, _ = tracker(Out(refuse=True))
    police, _ = two_tasks()
    with pytest.raises(ConnectionError):
        await cases.run([task_message(police, 1)])


def gauges(metrics: HubMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(
        metrics.cases_open,
        metrics.cases_overdue,
        metrics.cases_waiting,
        metrics.tasks_open,
        metrics.tasks_overdue,
    )


async def test_the_reports_read_the_open_cases_and_count_what_the_whole_table_counts() -> None:
    """A closed case never changes status again, so the reports read only the open cases the
    tracker keeps as it writes them (the table keeps every case ever opened, serialized). The
    gauges must be what a read of the whole table gives, overdue and waiting cases included."""
    out = Out()
    cases, table, _ = tracker(out)
    births = [two_tasks()]
    traffic = Traffic(CODEC, seed=33, provinces=1, population=60, now=NOW)
    while len(births) < 4:  # more cases, each with its police and insurance steps
        event = traffic.event(SourceTopic.BIRTH)
        assert isinstance(event, BirthRegistration)
        tasks, _ = expand(event, event.province_code, event.commune_code, NOW)
        if len(tasks) == 2:
            births.append([task for _, task in tasks])
    (p1, c1), (p2, c2), (p3, _), (p4, c4) = births
    await cases.run([task_message(t, i) for i, t in enumerate([p1, c1, p2, c2, p3, p4, c4])])
    stray = answer(two_tasks()[0].model_copy(update={"case_id": uuid4()}), 90)
    await cases.run(
        [
            answer(p1, 20),
            answer(c1, 21),  # completed
            answer(p2, 22, outcome=AckOutcome.REJECTED),  # rejected
            answer(p4, 23),
            stray,
        ]
    )  # one step left; an answer before any task
    assert set(cases.open) == {str(t.case_id).encode() for t in (p3, p4)} | {stray.key}
    later = NOW + timedelta(days=60)  # every pending step is overdue by then
    for now in (NOW, later):
        whole, kept = HubMetrics.create(CollectorRegistry()), HubMetrics.create(CollectorRegistry())
        every = [case_logic.summary(case_logic.load(raw)) for raw in table.values()]
        report_cases(whole, every, now)
        report_cases(kept, list(cases.open.values()), now)
        assert gauges(kept) == gauges(whole)
    assert any(v for (name, _), v in gauges(kept).items() if "overdue" in name)
    assert gauges(kept)[("hub_interconnection_cases_waiting", ())] == 1  # the stray answer
    fresh, _, _ = tracker(Out())
    fresh.table = table
    fresh.reload()  # a restart or a rebalance: read once from the recovered table
    assert fresh.open == cases.open


async def test_an_answer_before_its_task_then_the_task_gives_the_stored_case_its_workflow() -> None:
    """Answers can come before their task (a "waiting" case, no workflow yet): once the task
    arrives the stored row must say which workflow and province the case is, not keep the
    empty values the waiting row was written with."""
    cases, table, _ = tracker(Out())
    police, card = two_tasks()
    await cases.run([answer(police, 1)])
    await cases.store_changes(NOW)
    assert stored("SELECT workflow, province_code, status FROM interconnection_cases") == [
        ("", "", "waiting")]  # fmt: skip
    await cases.run([task_message(police, 2), task_message(card, 3)])
    await cases.store_changes(NOW)
    [(workflow, province, status)] = stored(
        "SELECT workflow, province_code, status FROM interconnection_cases")  # fmt: skip
    assert (workflow, province) == (police.workflow, police.province_code)
    assert status in ("open", "overdue")
    key = str(police.case_id).encode()
    assert key in cases.open and "answers" not in table.case(key), "the answer found its case"


def given_up(out: Out) -> list[DeadLetter]:
    return [letter for _, letter, _ in letters(out)]


def stray(offset: int, task_id: str = "") -> Incoming:
    """An answer for a case no task opened (a made-up case id)."""
    police = two_tasks()[0]
    made_up = police.model_copy(update={"case_id": uuid4(), "task_id": task_id or police.task_id})
    return answer(made_up, offset)


async def test_answers_whose_task_never_comes_are_dead_lettered_untouched_and_forgotten() -> None:
    """A flood of answers to made-up case ids must not stay in the worker's table for ever, and
    must not vanish: after the wait each answer goes to its dead-letter topic untouched (bytes,
    key, headers, origin), the case leaves the table (a tombstone) and its store row says why."""
    out, timer = Out(), Out()
    cases, table, metrics = tracker(out)
    message = stray(7)
    await cases.run([message])
    assert cases.open and table, "waiting for its task"
    wait = timedelta(hours=1)
    now = datetime.now(UTC)
    assert await cases.expire_waiting(now, wait, 100, timer) == 0, "not waited long yet"
    assert await cases.expire_waiting(now + 2 * wait, wait, 100, timer) == 1
    [letter] = given_up(timer)
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        message.topic, message.partition, message.offset)  # fmt: skip
    assert (letter.original_key, letter.original_value) == (message.key, message.value)
    assert [(h.key, h.value) for h in letter.original_headers] == list(message.headers)
    assert letter.reason == "ack_without_task" and timer.sent[0][0] == f"dlq.{message.topic}"
    assert not out.sent, "the chunks' outbox is not the timer's"
    assert not cases.open and not table and table.deletions == 1
    assert stored("SELECT case_id, status FROM interconnection_cases") == [
        ((message.key or b"").decode(), "unmatched")]  # fmt: skip
    report_cases(metrics, list(cases.open.values()), now)
    assert gauges(metrics)[("hub_interconnection_cases_waiting", ())] == 0
    assert await cases.expire_waiting(now + 4 * wait, wait, 100, timer) == 0, "once"
    assert len(given_up(timer)) == 1


async def test_beyond_the_limit_the_oldest_waiting_cases_are_given_up_on_first() -> None:
    out = Out()
    cases, _, _ = tracker(out)
    messages = [stray(i) for i in range(5)]
    for message in messages:  # one chunk each: each case waits since its own chunk
        await cases.run([message])
    now = datetime.now(UTC)
    assert await cases.expire_waiting(now, timedelta(days=1), 2, out) == 3
    assert [letter.original_offset for letter in given_up(out)] == [0, 1, 2]
    assert set(cases.open) == {m.key for m in messages[3:]}
    assert await cases.expire_waiting(now, timedelta(days=1), 2, out) == 0


async def test_a_waiting_case_keeps_a_bounded_number_of_answers_each_once() -> None:
    """Answers for one made-up case: kept up to the bound (a redelivered one once), the rest
    dead-lettered at once; given up on, each kept answer is dead-lettered once."""
    out = Out()
    cases, table, _ = tracker(out)
    first = stray(0, "t-0")
    case_id = AgencyAcknowledgement.model_validate(CODEC.decode(first.value or b"")[1]).case_id
    ack = AgencyAcknowledgement.model_validate(CODEC.decode(first.value or b"")[1])
    more = []
    for i in range(1, MAX_WAITING_ANSWERS + 4):
        other = ack.model_copy(update={"task_id": f"t-{i}"})
        value = CODEC.encode(AgencyAcknowledgement.SCHEMA, other.to_avro())
        more.append(Incoming(first.topic, 0, i, first.key, value))
    await cases.run([first, first, *more[:5]])  # the first answer delivered twice
    await cases.run([first, *more[5:]])  # and again, after a restart
    assert len(table.case(str(case_id).encode())["answers"]) == MAX_WAITING_ANSWERS
    refused = given_up(out)
    assert [letter.original_offset for letter in refused] == [16, 17, 18, 19]
    assert {letter.reason for letter in refused} == {"ack_without_task"}
    timer = Out()
    await cases.expire_waiting(datetime.now(UTC), timedelta(0), 100, timer)
    assert sorted(letter.original_offset for letter in given_up(timer)) == list(range(16))


class Gated(Out):
    """An outbox whose flush waits until the test opens it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def flush(self) -> None:
        await self.gate.wait()
        await super().flush()


async def test_a_task_arriving_while_its_answers_are_given_up_on_keeps_its_case() -> None:
    """The report timer gives up on a waiting case while a chunk brings its task: the case the
    task opens must stay in the table (the two take turns), its answer dead-lettered."""
    out, timer = Out(), Gated()
    cases, table, _ = tracker(out)
    police, _ = two_tasks()
    await cases.run([answer(police, 1)])
    expiring = asyncio.create_task(
        cases.expire_waiting(datetime.now(UTC) + timedelta(days=2), timedelta(days=1), 100, timer)
    )
    await asyncio.sleep(0.01)  # the timer is waiting for Kafka
    chunk = asyncio.create_task(cases.run([task_message(police, 2)]))
    await asyncio.sleep(0.01)
    timer.gate.set()
    await asyncio.gather(expiring, chunk)
    key = str(police.case_id).encode()
    assert key in table and key in cases.open, "the case the task opened is kept"
    assert table.case(key)["workflow"] == police.workflow and "answers" not in table.case(key)
    assert [letter.original_offset for letter in given_up(timer)] == [1]


async def test_a_waiting_case_an_earlier_version_wrote_is_given_up_on_after_the_wait() -> None:
    """A table written before answers were kept: its waiting case waits from the restart, then
    leaves the table; its answers' states stay in the store row (nothing to dead-letter)."""
    out = Out()
    cases, table, _ = tracker(out)
    case_id = str(uuid4())
    steps = {"t-1": {"state": "DONE", "reason": None, "agency": "POLICE"}}
    table[case_id.encode()] = case_logic.dump({"case_id": case_id, "steps": steps,
                                               "status": "OPEN"})  # fmt: skip
    cases.reload()
    now, wait = datetime.now(UTC), timedelta(hours=1)
    assert await cases.expire_waiting(now, wait, 100, out) == 0, "waits from the restart"
    assert await cases.expire_waiting(now + 2 * wait, wait, 100, out) == 1
    assert not table and not cases.open and not out.sent
    [(status, state)] = stored("SELECT status, state FROM interconnection_cases")
    assert status == "unmatched" and case_logic.from_store(state)["steps"] == steps


async def test_a_forged_answer_that_overtook_its_task_is_dead_lettered_when_the_task_voids_it() -> (
    None
):
    """The police answer for the insurance step before the task came (nothing yet says whose
    step it is); the task voids the answer — and the answer goes to its dead-letter topic,
    untouched, instead of vanishing."""
    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    forged = AgencyAcknowledgement(case_id=card.case_id, task_id=card.task_id,
                                   agency=Agency.POLICE, outcome=AckOutcome.DONE,
                                   acknowledged_at=NOW)  # fmt: skip
    message = Incoming(ack_topic_of(Agency.POLICE.value), 0, 5, str(card.case_id).encode(),
                       CODEC.encode(AgencyAcknowledgement.SCHEMA, forged.to_avro()))  # fmt: skip
    await cases.run([message, answer(police, 6)])  # a real police answer too: it is kept
    await cases.run([task_message(police, 7), task_message(card, 8)])
    [(topic, letter, key)] = letters(out)
    assert (topic, letter.reason, key) == (dead_letter_topic(message.topic), "ack_wrong_agency",
                                           message.key)  # fmt: skip
    assert (letter.original_offset, letter.original_value) == (5, message.value)
    steps = table.case(str(card.case_id).encode())["steps"]
    assert steps[card.task_id]["state"] == "PENDING" and steps[police.task_id]["state"] == "DONE"


async def test_answers_for_a_task_the_case_does_not_have_are_dead_lettered() -> None:
    """Before the case opened (kept, then dead-lettered when its first task says which tasks it
    has) and after (at once): an answer naming a made-up task id never counts for the case."""
    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    made_up = police.model_copy(update={"task_id": f"{police.case_id}:MADE_UP"})
    await cases.run([answer(made_up, 1, outcome=AckOutcome.REJECTED)])
    await cases.run([task_message(police, 2), answer(made_up, 3), task_message(card, 4)])
    assert [(letter.original_offset, letter.reason) for _, letter, _ in letters(out)] == [
        (1, "ack_unknown_task"), (3, "ack_unknown_task")]  # fmt: skip
    state = table.case(str(police.case_id).encode())
    assert set(state["steps"]) == {police.task_id, card.task_id} and "answers" not in state
    assert state["status"] == "OPEN", "the made-up rejection rejected nothing"


async def test_each_chunk_of_cases_is_one_observation_of_the_cases_stage() -> None:
    """The fetch's agency tasks and answers are a step of their own in the stage histogram,
    beside the batch's submit, produce and store."""
    cases, _, metrics = tracker(Out())
    police, card = two_tasks()
    await cases.run([task_message(police, 1)])
    await cases.run([task_message(card, 2), answer(police, 3)])
    timed = samples(metrics.stage_seconds)
    assert timed[("hub_stage_duration_seconds_count", (("stage", "cases"),))] == 2
    assert timed[("hub_stage_duration_seconds_sum", (("stage", "cases"),))] > 0


async def test_a_changelog_faust_wrote_as_json_reads_back_and_an_older_worker_reads_ours() -> None:
    """The table held dicts faust serialised as JSON; it now holds the tracker's own compact
    JSON bytes. A changelog written before reads back (the case goes on where it was), and what
    the tracker writes is still what faust's json codec reads (a rolling upgrade mixes both)."""
    from faust.serializers import codecs

    out = Out()
    cases, table, _ = tracker(out)
    police, card = two_tasks()
    opened, _ = case_logic.on_task(None, police)
    opened, _ = case_logic.on_task(opened, card)
    key = str(police.case_id).encode()
    table[key] = codecs.dumps("json", opened)  # as the worker's table wrote it before
    cases.reload()
    assert cases.open[key] == case_logic.summary(opened)
    await cases.run([answer(police, 3)])
    assert codecs.loads("json", table[key])["steps"][police.task_id]["state"] == "DONE"
    await cases.run([answer(card, 4)])
    assert key not in table
    assert stored("SELECT status FROM interconnection_cases") == [("completed",)]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(), JSON_VALUES, max_size=8))
def test_a_case_is_written_byte_for_byte_as_the_json_module_wrote_it(extra: dict[str, Any]) -> None:
    """dump() writes what ``json.dumps(case, ensure_ascii=False, separators=(",", ":"))`` wrote
    before it (so stored states and changelogs compare and read as before), for any text: names
    in any script, quotes, backslashes, control characters; load() and from_store() read it."""
    police, card = two_tasks()
    case, _ = case_logic.on_task(None, police)
    case, _ = case_logic.on_task(case, card)
    value: Any = {**case, "extra": extra}
    raw = case_logic.dump(value)
    assert raw == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert case_logic.load(raw) == value
    assert case_logic.from_store(raw.decode()) == value


def test_a_case_is_overdue_only_while_a_step_waits_on_its_agency_past_its_deadline() -> None:
    """DESIGN.md: deadlines are per step; the legal clock stops while the citizen supplements
    documents (a NEEDS_SUPPLEMENT step is not the agency's delay); a case with answers and no
    task waits; a closed case is never overdue."""
    past, future = (NOW - timedelta(days=1)).isoformat(), (NOW + timedelta(days=1)).isoformat()

    def case(*steps: tuple[str, str], status: str = "OPEN", workflow: bool = True) -> Any:
        state: dict[str, Any] = {"case_id": "c", "status": status, "steps": {
            f"t{i}": {"state": s, "agency": "POLICE", "due_at": due}
            for i, (s, due) in enumerate(steps)}}  # fmt: skip
        return state | ({"workflow": "birth"} if workflow else {})

    assert case_logic.status(case(("PENDING", future)), NOW) == "open"
    assert case_logic.status(case(("PENDING", future), ("PENDING", past)), NOW) == "overdue"
    assert case_logic.status(case(("NEEDS_SUPPLEMENT", past)), NOW) == "open"
    assert case_logic.status(case(("DONE", past), ("PENDING", future)), NOW) == "open"
    assert case_logic.status(case(("DONE", past)), NOW + timedelta(days=9)) == "open"
    assert case_logic.status(case(("PENDING", past), workflow=False), NOW) == "waiting"
    assert case_logic.status(case(("PENDING", past), status="COMPLETED"), NOW) == "completed"
    assert case_logic.status(case(("REJECTED", past), status="REJECTED"), NOW) == "rejected"
    summary = case_logic.summary(case(("NEEDS_SUPPLEMENT", past), ("PENDING", future)))
    assert sorted(summary.agencies) == ["POLICE", "POLICE"], "both steps still open"
