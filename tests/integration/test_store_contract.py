"""One contract for the central store, run against SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.bench.stores import BenchStore
from hub.domain import cases
from hub.domain.events import DeathRegistration, SourceEvent
from hub.domain.records import Envelope
from hub.domain.topics import SourceTopic
from hub.sim.traffic import Traffic
from hub.store.sql import Batch, Store, StoreError, batch_from, open_store
from hub.stream.pipeline import Accepted, Pipeline, PipelineConfig
from hub.types import Incoming
from hub.wire.codec import Codec
from tests.conftest import new_pg_schema

pytestmark = pytest.mark.integration
CODEC = Codec()
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        url = new_pg_schema(request.getfixturevalue("postgres_url"))
    s = open_store(url)
    yield s
    s.close()


Row = tuple[Envelope, SourceEvent]


def envelopes(n: int, topic: SourceTopic | None = None) -> list[Row]:
    traffic = Traffic(CODEC, seed=11, provinces=3, population=300, now=NOW)
    pipeline = Pipeline(CODEC, PipelineConfig())
    register = {p.personal_id: p for p in traffic.people}
    out = []
    for i in range(n):
        msg = traffic.message(traffic.event(topic))
        got = pipeline.process(Incoming(msg.topic, 0, i, msg.key, msg.value), register.get,
                               lambda _: None, NOW)  # fmt: skip
        assert isinstance(got, Accepted)
        out.append((got.envelope, got.event))
    return out


def test_a_batch_is_written_once_and_replaying_it_writes_nothing(store: Store) -> None:
    batch = batch_from(envelopes(300), NOW)
    assert store.write(batch) == 300
    assert store.write(batch) == 0, "a replayed batch stores nothing twice"
    assert store.query("SELECT count(*), count(DISTINCT event_id) FROM events") == [(300, 300)]


def test_times_stamped_by_the_store_read_back_as_the_drivers_own_adaptation(
    store: Store,
) -> None:
    """``batch_from(..., store.stamp)`` hands the store its times as it takes them (SQLite: ISO
    text, made once a batch for the times its rows share): every event and dossier-history row
    reads back exactly what the driver stored for the same row with the datetimes as they are."""
    envs = envelopes(60)
    later = NOW + timedelta(hours=7)  # another batch clock than the envelopes' ingested_at
    stamped, plain = batch_from(envs, later, store.stamp), batch_from(envs, later)
    assert plain.dossier_history, "the mix has dossier events"
    store.write(stamped)
    with store.transaction() as tx:  # empty copies of both tables, the same column types
        for table in ("events", "dossier_history"):
            tx.execute(f"CREATE TABLE plain_{table} AS SELECT * FROM {table} WHERE 1 = 0")
        tx.executemany(f"INSERT INTO plain_events VALUES ({','.join('?' * 14)})", plain.events)
        tx.executemany(f"INSERT INTO plain_dossier_history VALUES ({','.join('?' * 11)})",
                       plain.dossier_history)  # fmt: skip
    for table in ("events", "dossier_history"):
        got = store.query(f"SELECT * FROM {table} ORDER BY event_id")
        assert got == store.query(f"SELECT * FROM plain_{table} ORDER BY event_id"), table
    assert len(store.query("SELECT DISTINCT stored_at FROM events")) == 1


def test_a_batch_overlapping_a_stored_one_counts_only_its_new_rows(store: Store) -> None:
    envs = envelopes(300)
    assert store.write(batch_from(envs[:200], NOW)) == 200
    assert store.write(batch_from(envs[100:], NOW)) == 100
    assert store.query("SELECT count(*) FROM events") == [(300,)]


def test_missing_reports_exactly_the_absent_event_ids(store: Store) -> None:
    envs = envelopes(50)
    store.write(batch_from(envs[:30], NOW))
    ids = [e["event_id"] for e, _ in envs]
    assert store.missing(ids) == ids[30:]
    assert store.count_present(ids) == 30


def test_lineages_say_where_each_stored_event_was_first_read(store: Store) -> None:
    envs = envelopes(620)
    store.write(batch_from(envs[:600], NOW))
    ids = [e["event_id"] for e, _ in envs]
    found = store.lineages(ids)
    assert set(found) == set(ids[:600]), "stored ids only, across query chunks of 500"
    for env, _ in envs[:600]:
        lineage = env["lineage"]
        expected = f"{lineage['topic']}:{lineage['partition']}:{lineage['offset']}"
        assert found[env["event_id"]] == expected


def test_births_add_citizens_and_deaths_mark_them(store: Store) -> None:
    births = envelopes(20, SourceTopic.BIRTH)
    store.write(batch_from(births, NOW))
    assert store.query("SELECT count(*) FROM citizens WHERE deceased = FALSE") == [(20,)]
    child = births[0][0]["subject_id"]
    death, event = envelopes(1, SourceTopic.DEATH)[0]
    assert isinstance(event, DeathRegistration)
    store.write(batch_from([(death, event.model_copy(update={"deceased_id": child}))], NOW))
    assert store.query("SELECT deceased FROM citizens WHERE personal_id = ?", [child]) in (
        [(True,)], [(1,)],
    )  # fmt: skip


def test_a_dossier_row_never_moves_back_in_time(store: Store) -> None:
    newer = batch_from(envelopes(1, SourceTopic.DOSSIER), NOW)
    store.write(newer)
    code, *rest = newer.dossiers[0]
    older_row = (code, rest[0], "RECEIVED", *rest[2:6], rest[6] - timedelta(days=1))
    older = batch_from([], NOW)
    older.dossiers.append(older_row)
    store.write(older)
    assert store.query("SELECT status FROM dossiers WHERE dossier_code = ?", [code]) == [
        (newer.dossiers[0][2],)
    ]


def test_case_rows_and_their_steps_are_upserted_by_case_id(store: Store) -> None:
    from hub.domain.enums import BirthProcedure
    from hub.domain.records import AckOutcome, AgencyAcknowledgement
    from hub.domain.workflows import expand

    births = [e for _, e in envelopes(40, SourceTopic.BIRTH)]
    event = next(e for e in births if getattr(e, "interconnection", None) is not None)
    assert event.interconnection is not None  # type: ignore[attr-defined]
    chosen = event.interconnection.model_copy(  # type: ignore[attr-defined]
        update={"procedures": list(BirthProcedure), "received_at": NOW - timedelta(days=30)}
    )
    event = event.model_copy(update={"interconnection": chosen})
    tasks = [t for _, t in expand(event, "01", "00004", NOW)[0]]
    state = None
    for task in tasks:
        state, _ = cases.on_task(state, task)
    assert state is not None
    store.upsert_cases([cases.store_row(state, NOW)], cases.step_rows(state))
    assert store.query("SELECT status FROM interconnection_cases") == [("overdue",)]
    ack = AgencyAcknowledgement(case_id=tasks[0].case_id, task_id=tasks[0].task_id,
                                agency=tasks[0].agency, outcome=AckOutcome.REJECTED,
                                acknowledged_at=NOW, note="sai địa chỉ")  # fmt: skip
    state, _ = cases.on_ack(state, ack)
    store.upsert_cases([cases.store_row(state, NOW)], cases.step_rows(state))
    assert store.query("SELECT status FROM interconnection_cases") == [("rejected",)]
    steps = store.query("SELECT task_id, state, reason FROM case_steps ORDER BY task_id")
    assert len(steps) == 2
    assert (tasks[0].task_id, "REJECTED", "sai địa chỉ") in steps


def test_a_closed_case_is_never_replaced_by_an_open_one_and_reads_back(store: Store) -> None:
    """The store is the authority for closed cases (the worker keeps open ones only): an open
    row written late (a worker that lost the case's partition) must not replace a closed one,
    and a closed case reads back as the state it was written from."""
    from hub.domain.records import AckOutcome, AgencyAcknowledgement
    from hub.domain.workflows import expand

    births = [e for _, e in envelopes(80, SourceTopic.BIRTH)]
    event = next(e for e in births if expand(e, "01", "00004", NOW)[0])
    task = expand(event, "01", "00004", NOW)[0][0][1]
    opened, _ = cases.on_task(None, task)
    ack = AgencyAcknowledgement(case_id=task.case_id, task_id=task.task_id, agency=task.agency,
                                outcome=AckOutcome.REJECTED, acknowledged_at=NOW,
                                note="thiếu giấy tờ")  # fmt: skip
    closed, _ = cases.on_ack(opened, ack)
    store.upsert_cases([cases.store_row(opened, NOW)], cases.step_rows(opened))
    assert store.closed_cases([str(task.case_id)]) == {}, "open: the worker holds it"
    store.upsert_cases([cases.store_row(closed, NOW)], cases.step_rows(closed))
    store.upsert_cases([cases.store_row(opened, NOW)])  # stale
    assert store.query("SELECT status FROM interconnection_cases") == [("rejected",)]
    found = store.closed_cases([str(task.case_id), "no-such-case"])
    assert list(found) == [str(task.case_id)]
    assert cases.from_store(found[str(task.case_id)]) == closed


def test_a_case_given_up_on_is_not_closed_and_its_task_may_still_open_it(store: Store) -> None:
    """An answer's case whose task never came is given up on (``unmatched``): it is not a closed
    case (a task that comes after all must open it, not find it closed), and its row is
    replaced when that task comes."""
    from hub.domain.records import AckOutcome, AgencyAcknowledgement
    from hub.domain.workflows import expand

    births = [e for _, e in envelopes(80, SourceTopic.BIRTH)]
    event = next(e for e in births if expand(e, "01", "00004", NOW)[0])
    task = expand(event, "01", "00004", NOW)[0][0][1]
    ack = AgencyAcknowledgement(case_id=task.case_id, task_id=task.task_id, agency=task.agency,
                                outcome=AckOutcome.DONE, acknowledged_at=NOW)  # fmt: skip
    waiting, _ = cases.on_ack(None, ack)
    given_up = cases.unmatched(waiting, NOW)
    store.upsert_cases([cases.store_row(given_up, NOW)], cases.step_rows(given_up))
    assert store.query("SELECT status FROM interconnection_cases") == [("unmatched",)]
    assert store.closed_cases([str(task.case_id)]) == {}
    opened, _ = cases.on_task(None, task)
    store.upsert_cases([cases.store_row(opened, NOW)], cases.step_rows(opened))
    assert store.query("SELECT workflow, status FROM interconnection_cases") == [
        (task.workflow, cases.status(opened, NOW))]  # fmt: skip


def test_a_store_made_before_case_states_gets_the_column(tmp_path: Path) -> None:
    """A store created by an earlier version (no ``state`` on interconnection_cases) is opened
    without error and takes case rows with their state."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE interconnection_cases (case_id TEXT PRIMARY KEY, workflow TEXT "
                    "NOT NULL, province_code TEXT NOT NULL, opened_at TEXT NOT NULL, due_at "
                    "TEXT NOT NULL, pending TEXT NOT NULL, status TEXT NOT NULL, "
                    "closed_at TEXT)")  # fmt: skip
        old.execute("INSERT INTO interconnection_cases VALUES ('c1','birth','01','t','t','',"
                    "'completed','t')")  # fmt: skip
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.closed_cases(["c1"]) == {}, "a row without its state is not a state"
        state = {"case_id": "c2", "steps": {}, "status": "COMPLETED", "workflow": "birth"}
        store.upsert_cases([cases.store_row(state, NOW)])
        assert cases.from_store(store.closed_cases(["c2"])["c2"]) == state
    finally:
        store.close()


def test_an_unreachable_store_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        open_store("postgresql://nobody:x@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="unsupported HUB_STORE_URL"):
        open_store("mysql://x")


def test_the_register_keeps_each_citizens_latest_record_and_where_the_feed_got_to(
    store: Store,
) -> None:
    from hub.domain.records import PopulationRecord
    from hub.stream.register import register_row

    people = Traffic(CODEC, seed=5, provinces=1, population=50, now=NOW).people
    first, second = people[0], people[1]
    newer = first.model_copy(update={"deceased": True, "date_of_death": NOW.date(),
                                     "updated_at": NOW})  # fmt: skip

    def row(p: PopulationRecord, partition: int, offset: int) -> tuple[object, ...]:
        return register_row(p, CODEC.encode(PopulationRecord.SCHEMA, p.to_avro()), partition,
                            offset)  # fmt: skip

    assert store.apply_register("ref.t", [row(first, 0, 5), row(second, 1, 2)], [],
                                {0: 6, 1: 3}) == 2  # fmt: skip
    assert store.apply_register("ref.t", [row(newer, 0, 9)], [], {0: 10}) == 1
    # A second worker feeding behind the first: older offsets change nothing, not even where
    # the feed got to, and are not written again.
    assert store.apply_register("ref.t", [row(first, 0, 5)], [], {0: 6}) == 0
    got = store.register_records([first.personal_id, second.personal_id, "999999999999"])
    assert set(got) == {first.personal_id, second.personal_id}
    decoded = PopulationRecord.model_validate(CODEC.decode(got[first.personal_id])[1])
    assert decoded.deceased and decoded == newer
    assert store.register_offsets("ref.t") == {0: 10, 1: 3}
    assert store.register_offsets("ref.other") == {}
    # A tombstone later on the partition removes the person; an earlier one does not.
    store.apply_register("ref.t", [], [(second.personal_id, 1, 1)], {1: 3})
    assert second.personal_id in store.register_records([second.personal_id])
    store.apply_register("ref.t", [], [(second.personal_id, 1, 4)], {1: 5})
    assert store.register_records([second.personal_id]) == {}
    assert store.query("SELECT deceased FROM citizens WHERE personal_id = ?",
                       [first.personal_id])[0][0] in (True, 1)  # fmt: skip
    # After the topic's partitions were increased a person's records sit on two partitions:
    # the later record wins whatever order the partitions are read in.
    older = first.model_copy(update={"updated_at": NOW - timedelta(days=1)})
    store.apply_register("ref.t", [row(older, 3, 50)], [], {3: 51})
    assert PopulationRecord.model_validate(
        CODEC.decode(store.register_records([first.personal_id])[first.personal_id])[1]
    ).deceased, "an older record changed nothing"
    revived = first.model_copy(update={"full_name": "Nguyễn Văn Mới",
                                       "updated_at": NOW + timedelta(seconds=1)})  # fmt: skip
    store.apply_register("ref.t", [row(revived, 3, 52)], [], {3: 53})
    latest = store.register_records([first.personal_id])[first.personal_id]
    assert PopulationRecord.model_validate(CODEC.decode(latest)[1]).full_name == "Nguyễn Văn Mới"


def test_a_store_made_before_the_register_moved_gets_its_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE citizens (personal_id TEXT PRIMARY KEY, full_name TEXT NOT NULL, "
                "sex TEXT NOT NULL, date_of_birth TEXT NOT NULL, province_code TEXT NOT NULL, "
                "commune_code TEXT NOT NULL, deceased BOOLEAN NOT NULL DEFAULT FALSE, "
                "date_of_death TEXT, updated_at TEXT NOT NULL)")  # fmt: skip
    old.execute("INSERT INTO citizens VALUES ('001', 'A', 'M', '2000-01-01', '01', '00004', 0, "
                "NULL, '2026-01-01')")  # fmt: skip
    old.commit()
    old.close()
    s = open_store(f"sqlite:///{path}")
    try:
        assert s.register_records(["001"]) == {}, "a row without a record is not in the register"
        assert s.query("SELECT count(*) FROM citizens") == [(1,)]
    finally:
        s.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_bench_store_starts_empty_reads_back_its_times_and_leaves_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The latency bench's store (hub/bench/stores.py): the workers' URL, the bench's reads."""
    base = request.getfixturevalue("postgres_url") if kind == "postgresql" else None
    bench = BenchStore(tmp_path, base)
    assert bench.count() == 0, "no events table yet"
    rows = envelopes(20)
    store = open_store(bench.url)
    try:
        assert store.write(batch_from(rows, NOW)) == 20
    finally:
        store.close()
    assert bench.count() == 20
    times = bench.times()
    assert sorted(occurred for occurred, _, _ in times) == sorted(e["occurred_at"] for e, _ in rows)
    assert {ingested for _, ingested, _ in times} == {NOW} == {stored for *_, stored in times}
    bench.close()
    if base is not None:
        import psycopg

        with psycopg.connect(base) as conn:
            left = conn.execute("SELECT count(*) FROM information_schema.schemata "
                                "WHERE schema_name = %s", [bench.schema]).fetchone()  # fmt: skip
        assert left == (0,), "the bench's schema is dropped"


def test_a_batch_and_the_register_feed_writing_the_same_people_never_deadlock(
    postgres_url: str,
) -> None:
    """Two workers on one PostgreSQL: one's batch stores births (new citizens) and deaths
    (existing ones) while the register feed applies the register records of the same people
    (the batch's own outputs, read back from ref.population.v1). PostgreSQL locks rows in the
    order statements reach them; a transaction that took the births, then the deaths, against
    one that took the same people in another order deadlocked (seen with two workers: 10
    "deadlock detected" in 25 s, each a second lost and a retry). Both now go in one order."""
    import threading

    import psycopg

    url = new_pg_schema(postgres_url, "dl")
    setup = open_store(url)
    day, now = datetime(1990, 1, 1).date(), NOW
    existing = [f"{n:012d}" for n in range(0, 4000, 20)]
    person = ("Nguyễn Văn A", "MALE", day, "01", "00004", False, None, now, None, 0)
    setup.apply_register("ref", [(pid, *person, i) for i, pid in enumerate(existing)], [], {0: 1})
    setup.close()
    deadlocks: list[str] = []

    def run(write: Any) -> None:
        store = open_store(url)
        try:
            for round_ in range(8):
                barrier.wait()
                try:
                    write(store, round_)
                except psycopg.errors.DeadlockDetected as exc:
                    deadlocks.append(str(exc).splitlines()[0])
                    store = open_store(url)
        finally:
            store.close()

    def born(round_: int) -> list[str]:  # new people each round, between the existing ones
        return [f"{n + 1 + round_:012d}" for n in range(0, 4000, 20)]

    def batch(store: Store, round_: int) -> None:
        child = ("Trần Thị B", "FEMALE", day, "01", "00004", now)
        store.write(Batch(citizens=[(pid, *child) for pid in born(round_)],
                          deaths=[(pid, day, now) for pid in existing]))  # fmt: skip

    def feed(store: Store, round_: int) -> None:
        # The same people in an order of the feed's own (ascending, or descending).
        people = sorted([*born(round_), *existing], reverse=round_ % 2 == 0)
        rows = [(pid, "Lê Văn C", "MALE", day, "01", "00004", pid in existing, None,
                 now + timedelta(seconds=1), None, 1, round_ * 1000 + i)
                for i, pid in enumerate(people)]  # fmt: skip
        store.apply_register("ref", rows, [], {1: round_ * 1000 + len(rows)})

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(w,)) for w in (batch, feed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not deadlocks, deadlocks
