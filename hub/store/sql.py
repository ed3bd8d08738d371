"""The central store: ``events`` (one row per accepted event, unique on event_id) and
current-state tables (citizens, dossiers, interconnection cases), in SQLite or PostgreSQL.

Sink lifecycle: ``open()`` (connect, create tables), ``write(batch)`` (one transaction,
idempotent: a replayed batch inserts nothing twice), ``close()``. Writes are synchronous and
run in a thread by the caller, so a slow store pauses consumption instead of queueing.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import quote

from hub.domain.events import (
    BirthRegistration,
    DeathRegistration,
    ProcedureDossierEvent,
    SourceEvent,
)
from hub.domain.records import Envelope
from hub.redaction import redact


class StoreError(Exception):
    """The store cannot be reached or written: transient, retry then stop loudly."""

    retriable = True


class StoreRejected(Exception):
    """The store refused the data (constraint, encoding, value out of range): permanent.

    Retrying cannot help and stopping would stop every worker that meets the same batch;
    the rows it refuses are dead-lettered (``write_isolating``).
    """

    retriable = False


def refused_data(exc: BaseException) -> bool:
    """True when ``exc`` says the database refused the data, not that it was unreachable."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | UnicodeError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a declared dependency
        return False
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


Item = TypeVar("Item")


def write_isolating(
    items: Sequence[Item], write: Callable[[Sequence[Item]], int]
) -> tuple[int, list[tuple[Item, str]]]:
    """Write ``items``; when the store refuses the data, bisect to find the rows it refuses.

    Returns the rows inserted and each refused item with the database's message. A batch with
    one poisoned row costs about 2·log2(n) extra transactions; the others are written once.
    """
    try:
        return write(items), []
    except StoreRejected as exc:
        if len(items) == 1:
            return 0, [(items[0], str(exc))]
        middle = len(items) // 2
        left, left_refused = write_isolating(items[:middle], write)
        right, right_refused = write_isolating(items[middle:], write)
        return left + right, left_refused + right_refused


Rows = Sequence[Sequence[Any]]


def in_key_order(*statements: tuple[str, Rows, int]) -> list[tuple[str, list[Sequence[Any]]]]:
    """The rows of several statements on one table (each with the index of its key column) in
    one ascending order of the key, as runs of consecutive rows of one statement.

    PostgreSQL locks a row when a statement reaches it (an insert, one of the same key in
    flight), in the order of the rows. Two transactions that lock the same rows in one order
    never deadlock; in different orders they did (two workers: a batch storing births, then
    deaths, beside a register feed applying the same people's records). Every write of rows
    another worker may write too keeps one order: this one, or rows sorted on their key.
    Rows of one key keep the order of their statements."""
    keyed = sorted(((str(row[key]), i, row) for i, (_, rows, key) in enumerate(statements)
                    for row in rows), key=lambda t: (t[0], t[1]))  # fmt: skip
    runs: list[tuple[str, list[Sequence[Any]]]] = []
    for _, i, row in keyed:
        sql = statements[i][0]
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(row)
        else:
            runs.append((sql, [row]))
    return runs


def first(row: Sequence[Any]) -> str:
    """A row's key when it is its first column (event id, dossier code)."""
    return str(row[0])


@dataclass
class Batch:
    """Rows derived from a batch of unified events."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    citizens: list[tuple[Any, ...]] = field(default_factory=list)
    deaths: list[tuple[Any, ...]] = field(default_factory=list)
    dossiers: list[tuple[Any, ...]] = field(default_factory=list)
    dossier_history: list[tuple[Any, ...]] = field(default_factory=list)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def same(moment: datetime) -> Any:
    return moment


def batch_from(accepted: Iterable[tuple[Envelope, SourceEvent]], stored_at: datetime,
               stamp: Callable[[datetime], Any] = same) -> Batch:  # fmt: skip
    """Pure: the rows a batch of accepted events (envelope and validated source event) writes.

    ``stamp`` gives the store's parameter for a time (:meth:`Store.stamp`): SQLite's ISO text
    made here rather than through its adapter (~1.5 µs a value, the text itself ~0.5), and the
    times every event row of a batch shares (``stored_at``; ``ingested_at``, the batch's clock)
    made once a batch."""
    batch = Batch()
    stored = stamp(stored_at)
    clock: datetime | None = None
    ingested: Any = None
    for env, event in accepted:
        province, lineage = env["province_code"], env["lineage"]
        if env["ingested_at"] is not clock:
            clock = env["ingested_at"]
            ingested = stamp(clock)
        batch.events.append((
            env["event_id"], env["event_type"].value, env["subject_id"], province,
            env["commune_code"], env["source_system"], env["source_code_system"].value,
            stamp(env["occurred_at"]), ingested, stored, ",".join(env["quality"]["issues"]),
            lineage["topic"], lineage["partition"], lineage["offset"],
        ))  # fmt: skip
        if isinstance(event, ProcedureDossierEvent):
            batch.dossiers.append((
                event.dossier_code, province, str(event.status), str(event.channel),
                stamp(event.received_at), stamp(event.due_at),
                stamp(event.completed_at) if event.completed_at else None,
                stamp(event.occurred_at),
            ))  # fmt: skip
            # In UTC: SQLite compares timestamps as ISO text, which needs one offset.
            batch.dossier_history.append((
                env["event_id"], event.dossier_code, province,
                event.procedure_code, str(event.channel), str(event.status),
                stamp(utc(event.occurred_at)), stamp(utc(event.received_at)),
                stamp(utc(event.due_at)),
                stamp(utc(event.completed_at)) if event.completed_at else None,
                event.receiving_level.value if event.receiving_level else "UNKNOWN",
            ))  # fmt: skip
        elif isinstance(event, BirthRegistration):
            batch.citizens.append((
                event.child_id, event.child_full_name, str(event.child_sex),
                event.child_date_of_birth, province, env["commune_code"],
                stamp(event.occurred_at),
            ))  # fmt: skip
        elif isinstance(event, DeathRegistration):
            batch.deaths.append((event.deceased_id, event.date_of_death,
                                 stamp(event.occurred_at)))  # fmt: skip
    return batch


SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, subject_id TEXT NOT NULL,
  province_code TEXT NOT NULL, commune_code TEXT NOT NULL, source_system TEXT NOT NULL,
  source_code_system TEXT NOT NULL, occurred_at {ts} NOT NULL, ingested_at {ts} NOT NULL,
  stored_at {ts} NOT NULL, quality_issues TEXT NOT NULL, source_topic TEXT NOT NULL,
  source_partition INTEGER NOT NULL, source_offset BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS events_province ON events (province_code, event_type);
CREATE TABLE IF NOT EXISTS citizens (
  personal_id TEXT PRIMARY KEY, full_name TEXT NOT NULL, sex TEXT NOT NULL,
  date_of_birth {date} NOT NULL, province_code TEXT NOT NULL, commune_code TEXT NOT NULL,
  deceased BOOLEAN NOT NULL DEFAULT FALSE, date_of_death {date}, updated_at {ts} NOT NULL,
  record {blob}, source_partition INTEGER, source_offset BIGINT);
CREATE TABLE IF NOT EXISTS register_offsets (
  topic TEXT NOT NULL, partition_id INTEGER NOT NULL, next_offset BIGINT NOT NULL,
  PRIMARY KEY (topic, partition_id));
CREATE TABLE IF NOT EXISTS dossiers (
  dossier_code TEXT PRIMARY KEY, province_code TEXT NOT NULL, status TEXT NOT NULL,
  channel TEXT NOT NULL, received_at {ts} NOT NULL, due_at {ts} NOT NULL,
  completed_at {ts}, updated_at {ts} NOT NULL);
CREATE TABLE IF NOT EXISTS dossier_history (
  event_id TEXT PRIMARY KEY, dossier_code TEXT NOT NULL, province_code TEXT NOT NULL,
  procedure_code TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL, at {ts} NOT NULL,
  received_at {ts} NOT NULL, due_at {ts} NOT NULL, completed_at {ts}, receiving_level TEXT);
CREATE INDEX IF NOT EXISTS dossier_history_dossier ON dossier_history (dossier_code, at);
CREATE INDEX IF NOT EXISTS dossier_history_received ON dossier_history (received_at);
CREATE TABLE IF NOT EXISTS interconnection_cases (
  case_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, province_code TEXT NOT NULL,
  opened_at {ts} NOT NULL, due_at {ts} NOT NULL, pending TEXT NOT NULL,
  status TEXT NOT NULL, closed_at {ts}, state TEXT);
CREATE TABLE IF NOT EXISTS dead_letters (
  source_topic TEXT NOT NULL, source_partition INTEGER NOT NULL, source_offset BIGINT NOT NULL,
  province_code TEXT NOT NULL, stage TEXT NOT NULL, reason TEXT NOT NULL,
  failed_at {ts} NOT NULL, PRIMARY KEY (source_topic, source_partition, source_offset));
CREATE INDEX IF NOT EXISTS dead_letters_failed ON dead_letters (failed_at);
CREATE TABLE IF NOT EXISTS case_steps (
  case_id TEXT NOT NULL, task_id TEXT NOT NULL, agency TEXT NOT NULL, action TEXT NOT NULL,
  state TEXT NOT NULL, reason TEXT, due_at {ts}, updated_at {ts},
  PRIMARY KEY (case_id, task_id));
CREATE TABLE IF NOT EXISTS ingest_requests (
  credential TEXT NOT NULL, idempotency_key TEXT NOT NULL, body_sha256 TEXT NOT NULL,
  event_ids TEXT NOT NULL, received_at {ts} NOT NULL,
  PRIMARY KEY (credential, idempotency_key));
CREATE TABLE IF NOT EXISTS ingest_events (
  event_id TEXT PRIMARY KEY, credential TEXT NOT NULL, produced BOOLEAN NOT NULL,
  received_at {ts} NOT NULL);
CREATE INDEX IF NOT EXISTS ingest_events_received ON ingest_events (received_at);
CREATE TABLE IF NOT EXISTS ingest_audit (
  at {ts} NOT NULL, credential TEXT, remote TEXT NOT NULL, method TEXT NOT NULL,
  path TEXT NOT NULL, status INTEGER NOT NULL, event_ids TEXT NOT NULL,
  body_sha256 TEXT NOT NULL, idempotency_key TEXT);
CREATE INDEX IF NOT EXISTS ingest_audit_at ON ingest_audit (at);
"""

INSERT_EVENTS = (
    "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (event_id) DO NOTHING"
)
# The register as the workers read it (issue 15): each citizen's latest PopulationRecord (Avro
# bytes) from ref.population.v1, and how far each partition of that topic has been applied. A
# record replaces the row only when it is later on its partition (workers feed redundantly), or,
# from another partition (the topic's partitions were increased), when it is not older.
UPSERT_REGISTER = (
    "INSERT INTO citizens (personal_id, full_name, sex, date_of_birth, province_code, "
    "commune_code, deceased, date_of_death, updated_at, record, source_partition, source_offset) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (personal_id) DO UPDATE SET "
    "full_name = excluded.full_name, sex = excluded.sex, date_of_birth = excluded.date_of_birth, "
    "province_code = excluded.province_code, commune_code = excluded.commune_code, "
    "deceased = excluded.deceased, date_of_death = excluded.date_of_death, "
    "updated_at = excluded.updated_at, record = excluded.record, "
    "source_partition = excluded.source_partition, source_offset = excluded.source_offset "
    "WHERE citizens.source_offset IS NULL OR (excluded.source_partition = "
    "citizens.source_partition AND excluded.source_offset > citizens.source_offset) OR "
    "(excluded.source_partition <> citizens.source_partition AND "
    "excluded.updated_at >= citizens.updated_at)"
)
# A tombstone on the compacted topic removes the person from the register.
DELETE_REGISTER = (
    "DELETE FROM citizens WHERE personal_id = ? AND (source_offset IS NULL OR "
    "source_partition <> ? OR source_offset < ?)"
)
# Where a register row (UPSERT_REGISTER, hub/stream/register.py register_row) was read.
REGISTER_PARTITION, REGISTER_OFFSET = 10, 11
UPSERT_REGISTER_OFFSET = (
    "INSERT INTO register_offsets VALUES (?,?,?) ON CONFLICT (topic, partition_id) DO UPDATE "
    "SET next_offset = excluded.next_offset "
    "WHERE excluded.next_offset > register_offsets.next_offset"
)
UPSERT_CITIZEN = (
    "INSERT INTO citizens (personal_id, full_name, sex, date_of_birth, province_code, "
    "commune_code, updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (personal_id) DO NOTHING"
)
MARK_DECEASED = (
    "UPDATE citizens SET deceased = TRUE, date_of_death = ?, updated_at = ? WHERE personal_id = ?"
)
# A dossier's row moves only forward in time: a replayed or late older step does not regress it.
UPSERT_DOSSIER = (
    "INSERT INTO dossiers VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (dossier_code) DO UPDATE SET "
    "status = excluded.status, completed_at = excluded.completed_at, "
    "updated_at = excluded.updated_at WHERE excluded.updated_at >= dossiers.updated_at"
)
# Every status change of a dossier, once (unique on the event id): the indicators' source.
INSERT_DOSSIER_HISTORY = (
    "INSERT INTO dossier_history VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (event_id) DO NOTHING"
)
# A message re-read after a crash is dead-lettered again: recorded once.
INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING"
)
UPSERT_CASE_STEP = (
    "INSERT INTO case_steps VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (case_id, task_id) DO UPDATE "
    "SET agency = excluded.agency, action = excluded.action, state = excluded.state, "
    "reason = excluded.reason, due_at = excluded.due_at, updated_at = excluded.updated_at"
)
# The case as a whole (``state``: the worker's case state as JSON) is the authority for a closed
# case, which the worker no longer keeps (hub/stream/cases.py): a closed row is never replaced
# by an open one (a worker that lost the case's partition writing what it had).
UPSERT_CASE = (
    "INSERT INTO interconnection_cases (case_id, workflow, province_code, opened_at, due_at, "
    "pending, status, closed_at, state) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (case_id) "
    "DO UPDATE SET workflow = excluded.workflow, province_code = excluded.province_code, "
    "opened_at = excluded.opened_at, due_at = excluded.due_at, pending = excluded.pending, "
    "status = excluded.status, closed_at = excluded.closed_at, state = excluded.state "
    "WHERE interconnection_cases.status NOT IN ('completed', 'rejected') "
    "OR excluded.status IN ('completed', 'rejected')"
)
# Columns added since a store was first made: (table, column, type key or SQL type).
ADDED_COLUMNS = (
    ("citizens", "record", "{blob}"), ("citizens", "source_partition", "INTEGER"),
    ("citizens", "source_offset", "BIGINT"), ("interconnection_cases", "state", "TEXT"),
)  # fmt: skip


@dataclass
class Transaction:
    """A cursor inside ``SqlStore.transaction()`` that speaks the ``?`` placeholder dialect."""

    cursor: Any
    dialect: Callable[[str], str]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(self.dialect(sql), params)
        return [tuple(r) for r in self.cursor.fetchall()] if self.cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        self.cursor.executemany(self.dialect(sql), rows)
        return max(0, int(self.cursor.rowcount))


class Store(Protocol):
    url: str

    def open(self) -> None: ...
    def stamp(self, moment: datetime) -> Any: ...
    def write(self, batch: Batch) -> int: ...
    def upsert_cases(
        self, rows: Sequence[tuple[Any, ...]], steps: Sequence[tuple[Any, ...]] = ()
    ) -> None: ...
    def closed_cases(self, case_ids: Sequence[str]) -> dict[str, str]: ...
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def record_dead_letters(self, rows: Sequence[tuple[Any, ...]]) -> int: ...
    def transaction(self) -> AbstractContextManager[Transaction]: ...
    def count_present(self, event_ids: Sequence[str]) -> int: ...
    def apply_register(self, topic: str, rows: Sequence[tuple[Any, ...]],
                       deletions: Sequence[tuple[str, int, int]],
                       offsets: dict[int, int]) -> int: ...  # fmt: skip
    def register_offsets(self, topic: str) -> dict[int, int]: ...
    def register_records(self, personal_ids: Sequence[str]) -> dict[str, bytes]: ...
    def missing(self, event_ids: Sequence[str]) -> list[str]: ...
    def lineages(self, event_ids: Sequence[str]) -> dict[str, str]: ...
    def close(self) -> None: ...


class SqlStore:
    """Shared SQL; dialects differ in placeholders, column types and connection."""

    placeholder = "?"
    types: ClassVar[dict[str, str]] = {"ts": "TEXT", "date": "TEXT", "blob": "BLOB"}
    # Row locks for a read inside a write transaction (SQLite locks the whole database to write).
    lock_rows = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def stamp(self, moment: datetime) -> Any:
        """A time as this store takes it as a parameter (the driver adapts a datetime)."""
        return moment

    def _connect(self) -> Any:
        raise NotImplementedError

    def open(self) -> None:
        try:
            self.conn = self._connect()
            cur = self.conn.cursor()
            for stmt in SCHEMA_SQL.format(**self.types).split(";"):
                if stmt.strip():
                    cur.execute(stmt)
            self.conn.commit()
            self._add_columns()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(redact(f"cannot open store {self.url}: {exc}")) from exc

    def _runs(self, cur: Any, runs: list[tuple[str, list[Sequence[Any]]]]) -> None:
        """Runs of rows (in_key_order), one statement each."""
        for sql, rows in runs:
            cur.executemany(self._sql(sql), rows)

    def _add_columns(self) -> None:
        """A store made before a column was added gets it (ADDED_COLUMNS)."""
        cur = self.conn.cursor()
        for table, column, kind in ADDED_COLUMNS:
            try:
                cur.execute(f"SELECT {column} FROM {table} WHERE 1 = 0")
                self.conn.commit()
                continue
            except Exception:  # noqa: BLE001 - the column is missing: add it
                self.conn.rollback()
            cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind.format(**self.types)}")
            self.conn.commit()

    # ---- the population register -------------------------------------------------------
    def apply_register(self, topic: str, rows: Sequence[tuple[Any, ...]],
                       deletions: Sequence[tuple[str, int, int]],
                       offsets: dict[int, int]) -> int:  # fmt: skip
        """Register records (UPSERT_REGISTER rows), tombstones (personal id, partition, offset)
        and the next offset of each partition, in one transaction; the number of records
        written. Records and tombstones below where the register already is on their partition
        are skipped: every worker feeds the whole topic (each worker's cache must hear of every
        change), and the first to apply a range applies it for all. The partitions' rows of
        ``register_offsets`` are locked first (PostgreSQL), so the feeds take turns per range
        instead of writing the same citizens at once."""
        with self.transaction() as tx:
            done = self._register_positions(tx, topic, sorted(offsets))
            rows = [r for r in rows if r[REGISTER_OFFSET] >= done.get(r[REGISTER_PARTITION], 0)]
            deletions = [d for d in deletions if d[2] >= done.get(d[1], 0)]
            self._runs(tx.cursor, in_key_order((UPSERT_REGISTER, rows, 0),
                                               (DELETE_REGISTER, deletions, 0)))  # fmt: skip
            tx.executemany(
                UPSERT_REGISTER_OFFSET, [(topic, p, o) for p, o in sorted(offsets.items())]
            )
        return len(rows)

    def _register_positions(self, tx: Transaction, topic: str,
                            partitions: Sequence[int]) -> dict[int, int]:  # fmt: skip
        """Where the register is on ``partitions`` (the next offset to apply), those rows
        locked until the transaction ends where the database can (``lock_rows``)."""
        if not partitions:
            return {}
        marks = ",".join("?" * len(partitions))
        found = tx.execute(f"SELECT partition_id, next_offset FROM register_offsets WHERE topic = "
                           f"? AND partition_id IN ({marks}) ORDER BY partition_id"
                           f"{self.lock_rows}", [topic, *partitions])  # fmt: skip
        return {int(p): int(o) for p, o in found}

    def register_offsets(self, topic: str) -> dict[int, int]:
        """How far each partition of ``topic`` is in the register (the next offset to apply)."""
        rows = self.query("SELECT partition_id, next_offset FROM register_offsets WHERE topic = ?",
                          [topic])  # fmt: skip
        return {int(p): int(o) for p, o in rows}

    def register_records(self, personal_ids: Sequence[str]) -> dict[str, bytes]:
        """The register record (Avro bytes) of each of ``personal_ids`` that has one: one
        indexed query per 500 ids."""
        rows = self._rows_in("SELECT personal_id, record FROM citizens WHERE personal_id IN ({}) "
                             "AND record IS NOT NULL", personal_ids)  # fmt: skip
        return {str(pid): bytes(record) for pid, record in rows}

    def _rows_in(self, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` whose ``IN ({})`` list is ``keys``, 500 keys per query."""
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            rows += self.query(sql.format(",".join("?" * len(chunk))), chunk)
        return rows

    def write(self, batch: Batch) -> int:
        """Write one batch in one transaction; return the number of new event rows."""
        cur = self.conn.cursor()
        # Each table's rows in one order of their key (in_key_order): workers never deadlock.
        deaths = [(d, at, pid) for pid, d, at in batch.deaths]
        try:
            cur.executemany(self._sql(INSERT_EVENTS), sorted(batch.events, key=first))
            # Both drivers sum executemany's row counts; ignored duplicates count 0. (A count(*)
            # before and after scanned the whole table twice per batch.)
            inserted = max(0, int(cur.rowcount))
            self._runs(cur, in_key_order((UPSERT_CITIZEN, batch.citizens, 0),
                                         (MARK_DECEASED, deaths, 2)))  # fmt: skip
            if batch.dossiers:
                cur.executemany(self._sql(UPSERT_DOSSIER), sorted(batch.dossiers, key=first))
            if batch.dossier_history:
                cur.executemany(self._sql(INSERT_DOSSIER_HISTORY),
                                sorted(batch.dossier_history, key=first))  # fmt: skip
            self.conn.commit()
        except Exception as exc:
            self.conn.rollback()
            if refused_data(exc):
                raise StoreRejected(str(exc).strip()) from exc
            raise
        return inserted

    def upsert_cases(
        self, rows: Sequence[tuple[Any, ...]], steps: Sequence[tuple[Any, ...]] = ()
    ) -> None:
        """Case rows and their steps' rows (state, reason, times), in one transaction."""
        with self.transaction() as tx:
            tx.executemany(UPSERT_CASE, rows)
            if steps:
                tx.executemany(UPSERT_CASE_STEP, steps)

    def closed_cases(self, case_ids: Sequence[str]) -> dict[str, str]:
        """The state (JSON) of each of ``case_ids`` that is closed in the store: one indexed
        query per 500 ids."""
        rows = self._rows_in("SELECT case_id, state FROM interconnection_cases WHERE case_id IN "
                             "({}) AND status IN ('completed', 'rejected') AND state IS NOT NULL",
                             case_ids)  # fmt: skip
        return {str(case_id): str(state) for case_id, state in rows}

    def record_dead_letters(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Where each dead letter came from, why, and its province (the quality reports)."""
        with self.transaction() as tx:
            return tx.executemany(INSERT_DEAD_LETTER, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(sql), params)
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            self.conn.commit()
        except Exception:
            self.conn.rollback()
            raise
        return rows

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Statements in one transaction: committed when the block ends, rolled back on error."""
        cur = self.conn.cursor()
        try:
            yield Transaction(cur, self._sql)
            self.conn.commit()
        except Exception:
            self.conn.rollback()
            raise

    def count_present(self, event_ids: Sequence[str]) -> int:
        """How many of ``event_ids`` have a row in ``events``."""
        return len(event_ids) - len(self.missing(event_ids))

    def missing(self, event_ids: Sequence[str]) -> list[str]:
        """The ``event_ids`` without a row in ``events``."""
        found = self.lineages(event_ids)
        return [e for e in event_ids if e not in found]

    def lineages(self, event_ids: Sequence[str]) -> dict[str, str]:
        """Where each stored one of ``event_ids`` was first read (``topic:partition:offset``).

        The worker's duplicate check: one indexed query per batch, against the store every
        worker shares (a table of seen ids cost a changelog message per event and grew forever).
        """
        rows = self._rows_in("SELECT event_id, source_topic, source_partition, source_offset "
                             "FROM events WHERE event_id IN ({})", event_ids)  # fmt: skip
        return {str(event_id): f"{topic}:{partition}:{offset}"
                for event_id, topic, partition, offset in rows}  # fmt: skip

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# Pages (4 KiB) of write-ahead log between two checkpoints of an SQLite store (80 MiB).
WAL_CHECKPOINT_PAGES = 20_000


class SqliteStore(SqlStore):
    def stamp(self, moment: datetime) -> Any:
        """The ISO text the adapter below would make of ``moment``, made by the caller."""
        return moment.isoformat()

    def _connect(self) -> Any:
        path = Path(self.url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Personal data: readable by the hub's user only (SQLite gives its -wal/-shm files the
        # database file's mode).
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        sqlite3.register_adapter(datetime, datetime.isoformat)
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        # WAL lets `hub status` and the demo read while the worker writes.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # A checkpoint every WAL_CHECKPOINT_PAGES pages instead of SQLite's 1,000 (4 MB): a batch
        # of random event ids dirties pages all over the indexes, so with the default nearly
        # every commit checkpointed and the write cost grew with the tables (python -m
        # hub.bench.store; docs/BENCHMARKS.md). The WAL file grows to about that size.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        return conn


class PostgresStore(SqlStore):
    placeholder = "%s"
    types: ClassVar[dict[str, str]] = {"ts": "TIMESTAMPTZ", "date": "DATE", "blob": "BYTEA"}
    lock_rows = " FOR UPDATE"

    def _runs(self, cur: Any, runs: list[tuple[str, list[Sequence[Any]]]]) -> None:
        """In one pipeline: rows in key order alternate between statements, and a round trip
        for each run would add up."""
        with self.conn.pipeline():
            super()._runs(cur, runs)

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from exc
        try:
            return psycopg.connect(self.url)
        except psycopg.Error as exc:
            raise StoreError(redact(f"cannot connect to {self.url}: {exc}")) from exc


def schema_url(url: str, schema: str) -> str:
    """The PostgreSQL ``url`` whose connections work in ``schema`` (first on the search path,
    through libpq's ``options``): a store of its own inside a shared database."""
    option = quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={option}"


def create_schema(url: str, prefix: str) -> tuple[str, str]:
    """A fresh, empty schema ``<prefix>_<hex>`` in the PostgreSQL database of ``url``: its name,
    and the URL whose connections work in it (a store of its own: a test's, a bench run's)."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.Error as exc:
        raise StoreError(redact(f"cannot make a schema in {url}: {exc}")) from exc
    return schema, schema_url(url, schema)


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        store: SqlStore = SqliteStore(url)
    elif url.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(url)
    else:
        raise StoreError(
            redact(f"unsupported HUB_STORE_URL {url!r}: use sqlite:///PATH or postgresql://")
        )
    store.open()
    return store


class Connection:
    """One connection to the store, opened on first use and again after :meth:`reset` (a
    failed call drops it). A thread that writes on its own (the register feed) has its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None

    def __call__(self) -> Store:
        if self._store is None:
            self._store = open_store(self.url)
        return self._store

    def reset(self) -> None:
        self._store = None
