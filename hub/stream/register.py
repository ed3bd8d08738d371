"""The population register where a nation fits: in the central store, not in each worker.

- :class:`RegisterFeed` applies ``ref.population.v1`` (the compacted feed) to the store's
  ``citizens`` table, in batches, with how far each partition got in the same transaction. A
  worker starts from there: a restart reads only what was published since, whatever the size
  of the register.
- :class:`RegisterCache` answers a batch's lookups with one query for the people it has not
  seen lately (bounded, least recently used first out, entries expire so another worker's
  update is seen within ``ttl_s``); the worker's own registrations are put in at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from hub.domain.enums import Sex
from hub.domain.records import PopulationRecord
from hub.kafka.admin import topic_partitions
from hub.kafka.client import Connectable, options
from hub.metrics import HubMetrics
from hub.store.sql import Store, StoreError, utc
from hub.wire.codec import Codec, CodecError

if TYPE_CHECKING:
    from hub.stream.retry import StoreRetry

log = logging.getLogger(__name__)
T = TypeVar("T")


def register_row(record: PopulationRecord, data: bytes, partition: int,
                 offset: int) -> tuple[Any, ...]:  # fmt: skip
    """The ``citizens`` row of a register record read at ``partition``/``offset``."""
    return (record.personal_id, record.full_name, record.sex.value, record.date_of_birth,
            record.province_code, record.commune_code, record.deceased, record.date_of_death,
            utc(record.updated_at), data, partition, offset)  # fmt: skip


class RegisterCache:
    """Recently looked-up register entries (``None``: known not to be there)."""

    def __init__(self, codec: Codec, max_entries: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.codec = codec
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, PopulationRecord | None]] = OrderedDict()
        self.queries = 0

    def __len__(self) -> int:
        return len(self._entries)

    def refresh(self, personal_id: str, record: PopulationRecord | None) -> None:
        """A newer entry from the feed: replaces a cached one (others stay out of the cache)."""
        if personal_id in self._entries:
            self.put(personal_id, record)

    def drop(self, personal_id: str) -> None:
        """Forget an entry the store holds something newer of: the next lookup reads it."""
        self._entries.pop(personal_id, None)

    def put(self, personal_id: str, record: PopulationRecord | None) -> None:
        self._entries[personal_id] = (self.clock(), record)
        self._entries.move_to_end(personal_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def fetch(
        self, personal_ids: Iterable[str], query: Callable[[list[str]], dict[str, bytes]]
    ) -> dict[str, PopulationRecord]:
        """The register entries of ``personal_ids``: cached ones, the rest in one ``query``."""
        now = self.clock()
        found: dict[str, PopulationRecord] = {}
        missing: list[str] = []
        for pid in dict.fromkeys(personal_ids):
            hit = self._entries.get(pid)
            if hit is not None and now - hit[0] <= self.ttl_s:
                self._entries.move_to_end(pid)
                if hit[1] is not None:
                    found[pid] = hit[1]
            else:
                missing.append(pid)
        if missing:
            self.queries += 1
            rows = query(missing)
            for pid in missing:
                record = self.load(rows[pid]) if pid in rows else None
                self.put(pid, record)
                if record is not None:
                    found[pid] = record
        return found

    def load(self, data: bytes) -> PopulationRecord | None:
        """A register record from the store: validated by the feed before it was stored, so
        decoded without validating again (names are compared by ``name_key``, which normalises
        them anyway)."""
        try:
            record = self.codec.decode(data)[1]
            return PopulationRecord.model_construct(**{**record, "sex": Sex(record["sex"])})
        except (CodecError, KeyError, ValueError) as exc:
            log.warning("unreadable register entry skipped: %s", exc)
            return None

    def decode(self, data: bytes) -> PopulationRecord | None:
        """A register record from the feed, validated (the register's rules on personal IDs)."""
        try:
            return PopulationRecord.model_validate(self.codec.decode(data)[1])
        except (CodecError, ValidationError, ValueError) as exc:
            log.warning("unreadable register entry skipped: %s", exc)
            return None


@dataclass
class Applied:
    """What a batch of the feed tells the cache: people the store holds something newer of
    (``stale``: forgotten) and the records read (``refresh``: replace a cached entry)."""

    stale: list[str] = field(default_factory=list)
    refresh: list[tuple[str, PopulationRecord | None]] = field(default_factory=list)


class RegisterFeed:
    """``ref.population.v1`` → the store's register, from where the store says it got to."""

    def __init__(self, kafka: Connectable, topic: str, store: Callable[[], Store], codec: Codec,
                 cache: RegisterCache, batch: int = 5000, metrics: HubMetrics | None = None,
                 retry: StoreRetry | None = None) -> None:  # fmt: skip
        self.kafka = kafka
        self.topic = topic
        self.store = store
        self.codec = codec
        self.cache = cache
        self.batch = batch
        self.metrics = metrics
        # How store calls are made (hub/stream/retry.py: retried, in a thread); None: directly.
        self.retry = retry
        self.ready = asyncio.Event()  # set once caught up with the end at start
        self.applied = 0
        self.rejected = 0
        self._targets: dict[int, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Apply the feed until ``stop``; Kafka errors are retried (the worker waits)."""
        while not stop.is_set():
            try:
                await self._run(stop)
            except KafkaError as exc:
                log.warning("register feed: %s; retrying in 2 s", exc)
                await asyncio.sleep(2)

    async def _run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(**options(self.kafka), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_poll_records=self.batch)  # fmt: skip
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, [self.topic])
            consumer.assign(tps)
            done = await self._store("read", lambda: self.store().register_offsets(self.topic))
            for tp in tps:
                if tp.partition in done:
                    consumer.seek(tp, done[tp.partition])
            ends = await consumer.end_offsets(tps)
            self._targets = {tp.partition: end for tp, end in ends.items()}
            positions = {tp.partition: done.get(tp.partition, 0) for tp in tps}
            self._check_ready(positions)
            while not stop.is_set():
                fetched = await consumer.getmany(timeout_ms=500, max_records=self.batch)
                records = [r for recs in fetched.values() for r in recs]
                if records:
                    applied = await self._store("write", partial(self.apply, records))
                    for pid in applied.stale:
                        self.cache.drop(pid)
                    for pid, record in applied.refresh:
                        self.cache.refresh(pid, record)
                    for r in records:
                        positions[r.partition] = max(positions.get(r.partition, 0), r.offset + 1)
                elif not self.ready.is_set():
                    for tp in tps:  # compacted away or empty: the position says where we are
                        positions[tp.partition] = await consumer.position(tp)
                self._check_ready(positions)
        finally:
            await consumer.stop()

    async def _store(self, what: str, call: Callable[[], T]) -> T:
        """``call`` through the retry policy (off the event loop: a first start over a national
        register applies millions of records, which must not stop the worker answering
        /metrics); raises :class:`StoreError` once the store failed for good."""
        if self.retry is None:
            return await asyncio.to_thread(call)
        try:
            return await self.retry.required(f"register feed {what}", call)
        except StoreError:
            log.critical("register feed: the store failed for good; stopping the worker")
            raise

    def _check_ready(self, positions: dict[int, int]) -> None:
        if not self.ready.is_set() and all(
            positions.get(p, 0) >= end for p, end in self._targets.items()
        ):
            log.info("register ready: %d records applied since start", self.applied)
            self.ready.set()
            if self.metrics is not None:
                self.metrics.register_ready.set(1)

    def apply(self, records: list[Any]) -> Applied:
        """One batch of feed records → the store (one transaction). Returns what the cache must
        hear (the caller tells it, on the event loop: the cache is the loop's).

        Records below where the store already is on their partition were written by another
        worker's feed (or before a restart): they are neither decoded nor written again — the
        store holds them or newer, so the cache only forgets those people (the next lookup reads
        the store). Every worker reads the whole topic, so this is most of each worker's share
        when several run."""
        applied = Applied()
        rows: list[tuple[Any, ...]] = []
        deletions: list[tuple[str, int, int]] = []
        offsets: dict[int, int] = {}
        done = self.store().register_offsets(self.topic)
        already = 0
        for r in records:
            offsets[r.partition] = max(offsets.get(r.partition, 0), r.offset + 1)
            key = (r.key or b"").decode("utf-8", "replace")
            if r.offset < done.get(r.partition, 0):
                applied.stale.append(key)
                already += r.value is not None
                continue
            if r.value is None:
                deletions.append((key, r.partition, r.offset))
                applied.refresh.append((key, None))
                continue
            record = self.cache.decode(r.value)
            if record is None:
                self.rejected += 1
                if self.metrics is not None:
                    self.metrics.register_records.labels("rejected").inc()
                continue
            rows.append(register_row(record, r.value, r.partition, r.offset))
            applied.refresh.append((record.personal_id, record))
        # Another feed may have got further since ``done`` was read: the store skips those too.
        written = self.store().apply_register(self.topic, rows, deletions, offsets)
        self.applied += written
        if self.metrics is not None:
            self.metrics.register_records.labels("applied").inc(written)
            # Applied already, by another worker's feed (or before a restart): not written again.
            self.metrics.register_records.labels("already").inc(already + len(rows) - written)
        return applied
