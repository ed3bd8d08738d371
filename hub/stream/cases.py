"""Interconnection cases in the worker: agency tasks and acknowledgements, a chunk at a time.

:class:`CaseTracker` applies each message of a chunk to its case (the pure transitions of
hub/domain/cases.py), writes each case's new state once per chunk to the case table, and hands
the citizen-facing notifications and the dead letters of refused acknowledgements to the
outbox; :meth:`CaseTracker.run` returns once Kafka has them, and only then may the caller
acknowledge the chunk's offsets. :meth:`CaseTracker.changed` gives the store rows of the cases
that changed since the last call (and of those that went overdue without a message); the
reports read :attr:`CaseTracker.open`, a :class:`~hub.domain.cases.Summary` of each case not
closed, kept as they are written. The table holds each open case serialised
(:func:`hub.domain.cases.dump`): ~1.1 KB of the worker's memory a case (table value and
summary) against ~2.4 KB as dicts (``python -m hub.bench.cases --memory N``).

Answers can come before their task: the answer overtook it (they travel on different topics),
or names a case the hub never opened (a mistyped or made-up case id; the case "waits"). Such an
answer is kept with its case as it came until its step's task comes: the task voids an answer
from an agency the step is not for, which is then dead-lettered (``ack_wrong_agency``).
:meth:`CaseTracker.expire_waiting` gives up on a waiting case whose task has not come in time,
or on the oldest when too many wait: its answers go to their dead-letter
topic untouched, the case leaves the table, and its store row says ``unmatched``. A flood of
answers to made-up cases costs a worker a bounded amount of memory, and nothing is dropped.

No faust here: the table is any mapping of bytes to bytes (a faust Table in ``hub worker``, a
dict in tests).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from hub.domain import cases as case_logic
from hub.domain.records import (
    AgencyAcknowledgement,
    AgencyTask,
    CaseNotification,
    Stage,
)
from hub.domain.topics import NOTIFICATION_TOPIC, AckTopic, AgencyTopic
from hub.metrics import HubMetrics
from hub.store.sql import Store
from hub.stream.batch import Out, Retry
from hub.stream.dead_letters import letter_out
from hub.stream.pipeline import Rejected, validation_reason
from hub.types import Incoming
from hub.wire.codec import Codec, CodecError

log = logging.getLogger("hub.worker")

CaseState = case_logic.CaseState
# Acknowledgement topic → the agency it belongs to (the shared legacy topic is not in it).
ACK_AGENCY = {t.value: t.name for t in AckTopic}
Refused = list[tuple[Incoming, Rejected]]
# Answers a waiting case keeps (a case has a handful of steps): more are dead-lettered at once.
MAX_WAITING_ANSWERS = 16
WITHOUT_TASK = "ack_without_task"  # the dead-letter reason of answers whose task never came


class CaseTracker:
    def __init__(self, *, codec: Codec, metrics: HubMetrics, out: Out,
                 table: MutableMapping[bytes, bytes], store: Callable[[], Store],
                 retry: Retry, worker_name: str) -> None:  # fmt: skip
        self.codec = codec
        self.metrics = metrics
        self.out = out
        self.table = table
        self.store = store
        self.retry = retry
        self.worker_name = worker_name
        self.dirty: dict[str, CaseState] = {}  # changed since the store last had them
        self.overdue_written: set[str] = set()
        # This worker's cases not yet closed, as written: what the reports read.
        self.open: dict[bytes, case_logic.Summary] = {}
        # Closed cases the table still held at its recovery (written by a version that kept
        # them, or a crash between storing a case and removing it): stored, then removed.
        self.closing: dict[bytes, CaseState] = {}
        # A chunk and the report timer both change cases (and await in between): one at a time.
        self.lock = asyncio.Lock()

    def reload(self) -> None:
        """The open cases from the table as it is now: after a start or a rebalance (table
        recovery) changed which cases this worker holds."""
        self.open, self.closing = {}, {}
        now = datetime.now(UTC).isoformat()
        for key, raw in self.table.items():
            state = case_logic.load(raw)
            if case_logic.waiting(state) and "waiting_since" not in state:
                state["waiting_since"] = now  # written by an earlier version: waits from now
            if state["status"] == case_logic.OPEN:
                self.open[key] = case_logic.summary(state)
            else:
                self.closing[key] = state

    def state(self, key: bytes) -> CaseState | None:
        """The case the table holds under ``key`` (None: none), as a dict."""
        raw = self.table.get(key)
        return None if raw is None else case_logic.load(raw)

    async def run(self, messages: list[Incoming]) -> None:
        """One chunk: every case it touches written once (a closed one to the store, then out of
        the table), its notifications and dead letters in Kafka when this returns (a refused
        send or a store that failed for good raises: nothing may be acknowledged)."""
        async with self.lock:
            with self.metrics.stage_seconds.labels("cases").time():
                await self._run(messages)

    async def _run(self, messages: list[Incoming]) -> None:
        states: dict[bytes, CaseState] = {}
        refused: Refused = []
        now = datetime.now(UTC)  # the chunk's clock: closed cases' rows and dead letters
        stored = await self._closed_in_store(messages)
        notes = [n for msg in messages for n in self.apply(msg, states, refused, stored, now)]
        closed = [s for s in states.values() if s["status"] in case_logic.CLOSED]
        if closed:  # in the store before the table forgets them
            await self._write(*store_rows(closed, now))
        for key, state in states.items():
            if state["status"] in case_logic.CLOSED:
                self.table.pop(key, None)
                self.open.pop(key, None)
                self.closing.pop(key, None)
                self.dirty.pop(state["case_id"], None)
            else:
                self.table[key] = case_logic.dump(state)
                self.dirty[state["case_id"]] = state
                self.open[key] = case_logic.summary(state)
        for note in notes:
            value = self.codec.encode(CaseNotification.SCHEMA, note.to_avro())
            await self.out.add(NOTIFICATION_TOPIC, str(note.case_id).encode(), value)
        for msg, rejected in refused:
            await self.out.add(*letter_out(self.codec, self.metrics, msg, rejected, now,
                                           self.worker_name))  # fmt: skip
        await self.out.flush()
        for note in notes:
            self.metrics.notifications.labels(note.workflow, note.state).inc()

    async def expire_waiting(self, now: datetime, wait: timedelta, most: int, out: Out) -> int:
        """Give up on the waiting cases (answers, no task) that waited ``wait`` or more, and on
        the oldest beyond ``most``: their answers to their dead-letter topics (reason
        ``ack_without_task``) through ``out``, then the store row (``unmatched``), then out of
        the table. The number given up on; raises when Kafka refused or the store failed for
        good (the cases stay, and are given up on again at the next call).

        ``out`` is an outbox of the caller's (the report timer's), not the chunks': its flush
        must not send a batch's outputs, whose offsets would then move on another's flush."""
        async with self.lock:
            held = sorted((since(s), k) for k, s in self.open.items() if s.waiting)
            over = max(0, len(held) - most)
            why = {key: f"no task came for it within {wait}" for began, key in held
                   if now - began >= wait}  # fmt: skip
            for _, key in held[:over]:
                why.setdefault(key, f"more than {most} cases were waiting, the oldest given up on")
            expired = list(why)
            if not expired:
                return 0
            unkept = 0  # cases a version before this one wrote: their store rows hold the answers
            cases = {key: self._waiting_case(key) for key in expired}
            for key in expired:
                case = cases[key]
                kept = case.get("answers", [])
                unkept += not kept
                detail = (f"an answer for case {case['case_id']}, which no task opened: "
                          f"{why[key]} (a case id the hub never issued, or a task topic not "
                          "consumed)")  # fmt: skip
                rejected = Rejected(Stage.ROUTE, WITHOUT_TASK, detail)
                for answer in kept:
                    await out.add(*letter_out(self.codec, self.metrics, kept_message(answer),
                                              rejected, now, self.worker_name))  # fmt: skip
            await out.flush()
            given_up = [case_logic.unmatched(cases[k], now) for k in expired]
            for case in given_up:
                case.pop("answers", None)  # in their dead-letter topics now
            await self._write(*store_rows(given_up, now))
            for key in expired:
                self.open.pop(key)
                self.table.pop(key, None)
                self.dirty.pop(cases[key]["case_id"], None)
            log.warning("gave up on %d case(s) whose task never came; their answers are "
                        "dead-lettered (%s)", len(expired), WITHOUT_TASK)  # fmt: skip
            if unkept:  # their store rows (status unmatched) hold what was answered
                log.warning("%d of them kept no answers (an earlier version wrote them)", unkept)
            return len(expired)

    def _waiting_case(self, key: bytes) -> CaseState:
        """A waiting case from the table, with since when it waits (a case an earlier version
        wrote waits from this worker's start: its summary says so)."""
        held = self.open[key]
        case = self.state(key) or {"case_id": held.case_id, "steps": {}, "status": held.status}
        case["waiting_since"] = case.get("waiting_since") or held.waiting_since or ""
        return case

    async def _closed_in_store(self, messages: list[Incoming]) -> dict[bytes, CaseState]:
        """The closed cases, from the store, of the chunk's keys the table does not hold."""
        names = {key: name for key in {m.key for m in messages}
                 if key and key not in self.table and (name := case_id_of(key))}  # fmt: skip
        if not names:
            return {}
        ids = sorted(set(names.values()))
        found = await self.retry.required("case lookup", lambda: self.store().closed_cases(ids))
        return {key: case_logic.from_store(found[name])
                for key, name in names.items() if name in found}  # fmt: skip

    async def _write(self, rows: list[tuple[Any, ...]], steps: list[tuple[Any, ...]]) -> None:
        """Case rows and their steps' rows into the store, through the retry policy."""
        await self.retry.required("cases", lambda: self.store().upsert_cases(rows, steps))

    async def store_changes(self, now: datetime) -> None:
        """Write the cases changed since the last call, and those gone overdue since (they change
        without a message); closed cases left in the table at its recovery are stored, then
        removed from it. Raises StoreFailed when the store failed for good."""
        async with self.lock:
            await self._store_changes(now)

    async def _store_changes(self, now: datetime) -> None:
        closing = dict(self.closing)
        rows, steps = self.changed(now)
        if rows:
            await self._write(rows, steps)
        for key in closing:
            self.table.pop(key, None)
            self.closing.pop(key, None)

    def apply(self, msg: Incoming, states: dict[bytes, CaseState], refused: Refused,
              stored: dict[bytes, CaseState], now: datetime) -> list[CaseNotification]:  # fmt: skip
        """One task or acknowledgement applied to its case (``states``: the chunk's cases so
        far, over the table, over the closed cases ``stored``); the notifications it causes. An
        acknowledgement for another agency's step, or a message that cannot be read, is added to
        ``refused`` (a dead letter: nothing that enters the hub is dropped). An answer that came
        before its step's task is kept with the case as it came (``now``: since when a case no
        task opened waits); the task settles it (:func:`settle_kept`)."""
        key = msg.key or b""
        try:
            _, record = self.codec.decode(msg.value or b"")
            current = states.get(key) or self.state(key) or stored.get(key)
            if msg.topic == AgencyTopic.ACK.value or msg.topic in ACK_AGENCY:
                ack = AgencyAcknowledgement.model_validate(record)
                state, notes = case_logic.on_ack(current, ack, ACK_AGENCY.get(msg.topic))
                if "action" not in state["steps"][ack.task_id]:  # before its step's task
                    state = keep_answer(state, msg, ack, now)
            else:
                task = AgencyTask.model_validate(record)
                state, notes = case_logic.on_task(current, task)
                refused.extend(settle_kept(state, task))
        except (case_logic.WrongAgency, case_logic.UnknownStep, TooManyAnswers) as exc:
            log.warning("refused acknowledgement %s/%s: %s", msg.topic, msg.offset, exc)
            refused.append((msg, Rejected(Stage.ROUTE, exc.reason, str(exc))))
            return []
        except Exception as exc:  # noqa: BLE001 - any bad message is dead-lettered, never fatal
            log.warning("unreadable agency message %s/%s: %s", msg.topic, msg.offset, exc)
            stage = Stage.DECODE if isinstance(exc, CodecError) else Stage.VALIDATE
            detail = validation_reason(exc)[1] if isinstance(exc, ValidationError) else str(exc)
            refused.append((msg, Rejected(stage, "invalid_agency_message", detail)))
            return []
        states[key] = state
        return notes

    def changed(self, now: datetime) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The store rows (cases, steps) of what changed since the last call, including open
        cases that passed their deadline since (they change without a message) and the closed
        cases the table held at its recovery."""
        for case in self.closing.values():
            self.dirty[case["case_id"]] = case
        for key, held in self.open.items():
            if held.case_id in self.overdue_written:
                continue
            if held.status_at(now) == "overdue":
                self.overdue_written.add(held.case_id)
                if held.case_id not in self.dirty and (state := self.state(key)) is not None:
                    self.dirty[held.case_id] = state
        rows = store_rows(list(self.dirty.values()), now)
        self.dirty.clear()
        return rows


class TooManyAnswers(ValueError):
    """A case already keeps :data:`MAX_WAITING_ANSWERS` answers before their tasks."""

    reason = WITHOUT_TASK


def keep_answer(state: CaseState, msg: Incoming, ack: AgencyAcknowledgement,
                now: datetime) -> CaseState:  # fmt: skip
    """The case with ``msg`` (the answer ``ack``, before its step's task) kept as it came, once (a
    redelivered answer is kept once); a waiting case waits since its first answer."""
    kept = state.get("answers", [])
    if any((a["topic"], a["partition"], a["offset"]) == (msg.topic, msg.partition, msg.offset)
           for a in kept):  # fmt: skip
        return state
    if len(kept) >= MAX_WAITING_ANSWERS:
        raise TooManyAnswers(f"case {state['case_id']} already keeps {len(kept)} answers whose "
                             "task has not come")  # fmt: skip
    answer: case_logic.KeptAnswer = {
        "task_id": ack.task_id, "agency": ack.agency.value,
        "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
        "key": _text(msg.key), "value": _text(msg.value),
        "headers": [[k, _text(v)] for k, v in msg.headers],
    }  # fmt: skip
    state = {**state, "answers": [*kept, answer]}
    if case_logic.waiting(state):
        state["waiting_since"] = state.get("waiting_since") or now.isoformat()
    return state


def settle_kept(state: CaseState, task: AgencyTask) -> Refused:
    """The task's step has its task now: its kept answers leave ``state`` (the case opened, it
    no longer waits). Returned, to be dead-lettered: those the task voided, from an agency the
    step is not for (a forged or misrouted answer that overtook its task), and those for a task
    the opened case does not have."""
    state.pop("waiting_since", None)
    refused: Refused = []
    rest = []
    for kept in state.pop("answers", []):
        task_id, agency = kept.get("task_id"), kept.get("agency")
        if task_id not in state["steps"]:
            reason = case_logic.UnknownStep.reason
            detail = f"case {state['case_id']} has no task {task_id!r}"
        elif task_id == task.task_id and agency != task.agency.value:
            reason = case_logic.WrongAgency.reason
            detail = f"{agency} answered for a {task.agency.value} step ({task_id}) before its task"
        elif task_id == task.task_id:
            continue  # its step has its task: the answer stands
        else:
            rest.append(kept)  # its own task is still on its way
            continue
        refused.append((kept_message(kept), Rejected(Stage.ROUTE, reason, detail)))
    if rest:
        state["answers"] = rest
    return refused


def kept_message(answer: case_logic.KeptAnswer) -> Incoming:
    """An answer :func:`keep_answer` kept, as the message it came as."""
    headers = tuple((k, _bytes(v)) for k, v in answer["headers"])
    return Incoming(answer["topic"], answer["partition"], answer["offset"],
                    _bytes(answer["key"]), _bytes(answer["value"]), headers)  # fmt: skip


def _text(raw: bytes | None) -> str | None:  # bytes kept in the JSON case state
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def since(held: case_logic.Summary) -> datetime:
    """When a waiting case's first answer came (the hub's clock)."""
    return datetime.fromisoformat(held.waiting_since or "")


def store_rows(states: list[CaseState], now: datetime
               ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:  # fmt: skip
    """The ``interconnection_cases`` rows of ``states`` and the ``case_steps`` rows of theirs."""
    return ([case_logic.store_row(c, now) for c in states],
            [row for c in states for row in case_logic.step_rows(c)])  # fmt: skip


def case_id_of(key: bytes) -> str | None:
    """The case id a message key names (a UUID, as the hub writes it), or None: a key that
    cannot be one is never sent to the store (PostgreSQL would refuse a NUL in it)."""
    try:
        name = key.decode("ascii")
        return name if str(uuid.UUID(name)) == name else None
    except ValueError:  # UnicodeDecodeError included
        return None


def report_cases(metrics: HubMetrics, states: list[case_logic.Summary], now: datetime) -> None:
    """The open, overdue and waiting gauges of the cases ``states`` summarise (this worker's
    partitions)."""
    open_cases: dict[str, int] = {}
    overdue_cases: dict[str, int] = {}
    open_tasks: dict[tuple[str, str], int] = {}
    overdue_tasks: dict[tuple[str, str], int] = {}
    waiting = 0
    for case in states:
        st = case.status_at(now)
        waiting += st == "waiting"
        wf = "unknown" if case.workflow is None else case.workflow
        if st in ("open", "overdue"):
            open_cases[wf] = open_cases.get(wf, 0) + 1
            for agency in case.agencies:
                open_tasks[(wf, agency)] = open_tasks.get((wf, agency), 0) + 1
                if st == "overdue":
                    overdue_tasks[(wf, agency)] = overdue_tasks.get((wf, agency), 0) + 1
        if st == "overdue":
            overdue_cases[wf] = overdue_cases.get(wf, 0) + 1
    metrics.cases_waiting.set(waiting)
    for wf in {"birth", "death"} | set(open_cases):
        metrics.cases_open.labels(wf).set(open_cases.get(wf, 0))
        metrics.cases_overdue.labels(wf).set(overdue_cases.get(wf, 0))
    for key in set(open_tasks) | set(overdue_tasks):
        metrics.tasks_open.labels(*key).set(open_tasks.get(key, 0))
        metrics.tasks_overdue.labels(*key).set(overdue_tasks.get(key, 0))
