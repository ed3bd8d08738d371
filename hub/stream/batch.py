"""One batch of source messages through the worker: the logic ``hub worker`` runs, without faust.

:class:`BatchProcessor` takes the messages of one batch and, in named steps:

1. :meth:`submit` — decode, look up which event ids are already stored and the register
   entries of the batch's subjects (one query each), run the pure pipeline, hand every output
   (unified event, agency tasks, register update, dead letter) to the producer;
2. :meth:`produce` — wait until Kafka acknowledged every one of them;
3. :meth:`store` — write the accepted events and the dead letters to the central store (rows
   the store refuses are dead-lettered ``store_rejected``; outages are retried, then stop);
4. only then may the caller acknowledge the batch's offsets: :meth:`run` returns True.

A crash anywhere before 4 replays the batch, and both Kafka consumers (event ids) and the store
are idempotent. faust's part (consuming, committing, the web server) is in hub/stream/app.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from typing import Any, Protocol, TypeVar

from hub.domain.events import SourceEvent, clock_at
from hub.domain.identity import subject_claimed
from hub.domain.quality import DIMENSIONS
from hub.domain.records import AgencyTask, Envelope, PopulationRecord, Stage, UnifiedEvent
from hub.metrics import Children, HubMetrics, source_label
from hub.redaction import redact
from hub.store.sql import Store, batch_from, write_isolating
from hub.stream.dead_letters import (
    DeadLetterLimit,
    DeadLetterLimitExceeded,
    dead_letter_row,
    letter_out,
)
from hub.stream.pipeline import Accepted, Pipeline, Rejected
from hub.stream.register import RegisterCache
from hub.stream.retry import StoreFailed
from hub.types import Incoming
from hub.wire.codec import Codec

log = logging.getLogger("hub.worker")
T = TypeVar("T")

Row = tuple[Envelope, SourceEvent]
# Quality issues counted in hub_identity_issues_total (hub/domain/identity.py's codes).
IDENTITY_ISSUES = ("subject_", "name_", "sex_", "dob_")
# An event's quality flags in the order of DIMENSIONS.
QUALITY_FLAGS = itemgetter(*DIMENSIONS)


class Out(Protocol):
    """Where a batch's outputs go (hub/kafka/outbox.py): collected by ``add``, in Kafka once
    ``flush`` returned (it raises if any was refused)."""

    async def add(self, topic: str, key: bytes | None, value: bytes,
                  headers: Sequence[tuple[str, bytes | None]] = ()) -> None: ...  # fmt: skip

    async def flush(self) -> None: ...


class Retry(Protocol):
    """Run a store call with retries (hub/stream/retry.py); raises StoreFailed when it failed
    for good (the worker stops)."""

    async def required(self, what: str, call: Callable[[], T]) -> T: ...


class Stop(Exception):
    """The batch cannot complete (the store failed for good, too many dead letters): nothing of
    it may be acknowledged, and the worker stops."""


@dataclass
class Work:
    """What :meth:`BatchProcessor.submit` made of a batch, for the steps after it."""

    accepted: list[Row] = field(default_factory=list)
    origin: dict[str, Incoming] = field(default_factory=dict)
    letters: list[tuple[Any, ...]] = field(default_factory=list)


class BatchProcessor:
    def __init__(self, *, pipeline: Pipeline, codec: Codec, metrics: HubMetrics,
                 out: Out, store: Callable[[], Store], retry: Retry,
                 register: RegisterCache, population_topic: str, limit: DeadLetterLimit,
                 worker_name: str) -> None:  # fmt: skip
        self.pipeline = pipeline
        self.codec = codec
        self.metrics = metrics
        self.out = out
        self.store_of = store
        self.retry = retry
        self.register = register
        self.population_topic = population_topic
        self.limit = limit
        self.worker_name = worker_name
        self.events_in = Children(metrics.events_in)
        self.quality = Children(metrics.quality)
        self.identity_issues = Children(metrics.identity_issues)
        self.failure: Stop | None = None

    async def run(self, batch: list[Incoming]) -> bool:
        """The whole batch; True when its offsets may be acknowledged, False when the worker
        must stop (then nothing of the batch is acknowledged)."""
        try:
            with self.metrics.stage_seconds.labels("submit").time():
                work = await self.submit(batch)
            await self.produce(work)
            await self.store(work)
        except Stop as exc:
            log.critical("%s; stopping the worker", exc)
            self.failure = exc
            return False
        self.count_quality(work.accepted)
        return True

    # ---- 1. submit -------------------------------------------------------------------------
    async def submit(self, batch: list[Incoming]) -> Work:
        now = datetime.now(UTC)  # the batch's one clock read: validation and scoring use it
        with clock_at(now):
            decoded = [self.pipeline.decode(msg) for msg in batch]
        # Each event id as text once: the batch's duplicate query and the envelope use it.
        ids = [None if isinstance(e, Rejected) else str(e.event_id) for e in decoded]
        known = await self._store("read", partial(self._lineages,
                                                  [i for i in ids if i is not None]))  # fmt: skip
        valid = [e for e in decoded if not isinstance(e, Rejected)]
        subjects = [s for e in valid if (s := subject_claimed(e)) is not None]
        people = await self._store("register", partial(self.register.fetch, subjects,
                                                        self._register_records))  # fmt: skip
        work = Work()
        for topic, n in Counter(msg.topic for msg in batch).items():
            self.events_in(topic).inc(n)
        for msg, event, text_id in zip(batch, decoded, ids, strict=True):
            outcome = event if isinstance(event, Rejected) else self.pipeline.process_event(
                msg, event, people.get, known.get, now, text_id)  # fmt: skip
            if isinstance(outcome, Accepted):
                event_id = outcome.envelope["event_id"]
                known.setdefault(event_id, msg.lineage)
                work.origin.setdefault(event_id, msg)
                work.accepted.append((outcome.envelope, outcome.event))
                await self._outputs(outcome, people, work)
            else:
                await self._dead_letter(msg, outcome, now, work)
            try:
                self.limit.record(not isinstance(outcome, Accepted))
            except DeadLetterLimitExceeded as exc:
                raise Stop(str(exc)) from exc
        return work

    async def _outputs(self, outcome: Accepted, people: dict[str, PopulationRecord],
                       work: Work) -> None:  # fmt: skip
        unified = self.codec.encode(UnifiedEvent.SCHEMA, outcome.envelope)
        await self.out.add(outcome.unified_topic, outcome.key.encode(), unified)
        for topic, task in outcome.tasks:
            value = self.codec.encode(AgencyTask.SCHEMA, task.to_avro())
            await self.out.add(topic.value, str(task.case_id).encode(), value)
        for workflow, reason in outcome.skipped:
            self.metrics.interconnection_skipped.labels(workflow, reason).inc()
        if outcome.register is not None:
            # The batch's later events and this worker's next batches see it at once; the feed
            # brings it to the store (and to every worker) from the topic.
            person = outcome.register
            people[person.personal_id] = person
            self.register.put(person.personal_id, person)
            value = self.codec.encode(PopulationRecord.SCHEMA, person.to_avro())
            await self.out.add(self.population_topic, person.personal_id.encode(), value)

    async def _dead_letter(self, msg: Incoming, rejected: Rejected, now: datetime,
                           work: Work) -> None:  # fmt: skip
        await self.out.add(*letter_out(self.codec, self.metrics, msg, rejected, now,
                                       self.worker_name))  # fmt: skip
        # Quality covers every event that arrived: a dead letter is usable on no dimension.
        source, province = source_label(msg.topic), self.pipeline.province_of(msg)
        for dim in DIMENSIONS:
            self.quality(dim, source, province, "false").inc()
        work.letters.append(dead_letter_row(msg, rejected, province, now))
        log.info("dead letter %s@%s/%s: %s %s", msg.topic, msg.partition, msg.offset,
                 rejected.stage, rejected.reason)  # fmt: skip

    # ---- 2. produce ------------------------------------------------------------------------
    async def produce(self, work: Work) -> None:
        """Every output of the batch in Kafka (a failed send raises: nothing is acknowledged)."""
        with self.metrics.stage_seconds.labels("produce").time():
            await self.out.flush()

    # ---- 3. store --------------------------------------------------------------------------
    async def store(self, work: Work) -> None:
        if work.accepted:
            work.accepted = await self._write(work)
        if work.letters:
            await self._store("dead letters", partial(self._record_letters, work.letters))

    async def _write(self, work: Work) -> list[Row]:
        """Write the accepted events; return those stored. Rows the store refuses (a data
        error, not an outage) are dead-lettered with reason ``store_rejected`` and the
        database's message; the rest are written once."""
        now = datetime.now(UTC)
        with self.metrics.stage_seconds.labels("store").time():
            inserted, refused = await self._store("write", partial(
                write_isolating, work.accepted,
                lambda rows: self._write_rows(rows, now)))  # fmt: skip
        self.metrics.store_rows.inc(inserted)
        stored = datetime.now(UTC)
        refused_ids = set()
        for (env, _), message in refused:
            refused_ids.add(env["event_id"])
            msg = work.origin[env["event_id"]]
            rejected = Rejected(Stage.STORE, "store_rejected", message)
            await self.out.add(*letter_out(self.codec, self.metrics, msg, rejected, stored,
                                           self.worker_name))  # fmt: skip
            work.letters.append(dead_letter_row(msg, rejected, env["province_code"], stored))
            log.warning("store refused %s (%s); dead-lettered: %s", env["event_id"],
                        msg.lineage, redact(message))  # fmt: skip
        if refused:
            await self.out.flush()
        kept = [pair for pair in work.accepted if pair[0]["event_id"] not in refused_ids]
        for env, _ in kept:
            self.metrics.latency.observe(max(0.0, (stored - env["occurred_at"]).total_seconds()))
        return kept

    # ---- after: metrics of the batch ---------------------------------------------------------
    def count_quality(self, accepted: list[Row]) -> None:
        """The quality series of a batch's accepted events: one increment per label set."""
        flags: Counter[tuple[str, str, tuple[bool, ...]]] = Counter()
        issues: Counter[tuple[str, str]] = Counter()
        for env, _ in accepted:
            q, topic = env["quality"], env["lineage"]["topic"]
            flags[(topic, env["province_code"], QUALITY_FLAGS(q))] += 1
            for issue in q["issues"]:
                if issue.startswith(IDENTITY_ISSUES):
                    issues[(source_label(topic), issue)] += 1
        dims: Counter[tuple[str, str, str, str]] = Counter()
        for (topic, prov, values), n in flags.items():
            src = source_label(topic)
            for dim, value in zip(DIMENSIONS, values, strict=True):
                dims[(dim, src, prov, "true" if value else "false")] += n
        for labels, n in dims.items():
            self.quality(*labels).inc(n)
        for pair, n in issues.items():
            self.identity_issues(*pair).inc(n)

    # ---- the store, through the retrying caller ------------------------------------------------
    async def _store(self, what: str, call: Callable[[], T]) -> T:
        try:
            return await self.retry.required(what, call)
        except StoreFailed as exc:
            raise Stop(f"the store failed for good ({what}): nothing of the batch acknowledged"
                       ) from exc  # fmt: skip

    def _write_rows(self, rows: Sequence[Row], now: datetime) -> int:
        store = self.store_of()
        return store.write(batch_from(rows, now, store.stamp))

    def _lineages(self, event_ids: list[str]) -> dict[str, str]:
        return self.store_of().lineages(event_ids)

    def _register_records(self, personal_ids: list[str]) -> dict[str, bytes]:
        return self.store_of().register_records(personal_ids)

    def _record_letters(self, letters: list[tuple[Any, ...]]) -> int:
        return self.store_of().record_dead_letters(letters)
