"""``hubkafka://``: faust's aiokafka transport whose consumer hands the hub whole fetches.

faust delivers every message on its own: ``_drain_messages`` awaits ``wait_first(callback(msg),
suspend_flow.wait())`` per message (two tasks and an ``asyncio.wait``), then the conductor, the
stream's queue and its per-message ``sleep(0)`` — ~50 µs a message before any work is done
(docs/BENCHMARKS.md). This transport keeps everything else of faust (group membership,
rebalancing, commits, tables and their changelogs, timers, the web server) and changes one thing:
records of the topics the app hands to :func:`take_in_chunks` skip that path. Each fetch's
records of those topics go to the app's chunk handler at once, as one chunk; every other topic
(table changelogs, agents) keeps faust's own per-message path.

The chunk's offsets are acknowledged to faust's commit bookkeeping only after the handler
returns what it processed, so faust commits them like offsets its agents acknowledged. While a
chunk is in the handler the consumer counts as having an unacknowledged message, so a rebalance
(which waits for ``wait_empty`` before it commits) lets the chunk in flight finish first; a
chunk fetched in a generation that is over by the time it would start is dropped (its partitions
are sought back to their committed offsets, as faust does).

Registered as the setuptools entry point ``faust.transports: hubkafka`` (pyproject.toml), the
way faust finds transports by URL scheme. The private parts it overrides are listed in
hub/kafka/faust_compat.py and tested in tests/unit/test_faust_compat.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

import faust
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.futures import notify

log = logging.getLogger("hub.worker")

SCHEME = "hubkafka"

# What the app's handler gets: the fetch's records per partition, in offset order. What it
# returns: per partition, the offsets it handled (a range; it may have read back records the
# consumer skipped, so the range can start before the chunk), or None to acknowledge nothing.
Chunk = Mapping[TP, Sequence[Any]]
Handled = Mapping[TP, range]
ChunkHandler = Callable[[Chunk], Awaitable[Handled | None]]


def whole(chunk: Chunk) -> dict[TP, range]:
    """What a handler returns when it handled every record of ``chunk`` (none read back)."""
    return {tp: range(records[0].offset, records[-1].offset + 1) for tp, records in chunk.items()}


class Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer; records of ``chunk_topics`` go to ``chunk_handler``."""

    chunk_topics: frozenset[str] = frozenset()
    chunk_handler: ChunkHandler | None = None
    _background_commit: asyncio.Future[None] | None = None
    # After the handler was busy this long (seconds), a fetch is topped up (:meth:`_top_up`),
    # waiting at most as long again for what is newer; 0: never (take_in_chunks sets it).
    top_up_s: float = 0.0
    _returned_at = math.inf  # when the last wait for a fetch returned (time.monotonic)

    async def _drain_messages(self, fetcher: Any) -> None:  # faust_compat: DRAIN
        if self.chunk_handler is None:
            await super()._drain_messages(fetcher)
            return
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                busy = time.monotonic() - self._returned_at  # in the handler since the last
                records, active = await self._wait_next_records(1.0)
                self._returned_at = time.monotonic()  # an empty wait is not a turn
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                generation = self.app.consumer_generation_id
                if 0 < self.top_up_s <= busy and self.flow_active:
                    records = await self._top_up(records, active)
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    # A rebalance started after the fetch (or during its top-up): what was
                    # fetched is read again from the committed offsets (faust's getmany does
                    # the same).
                    await self._seek_back()
                    continue
                chunk, rest = self._split(records, active)
                if chunk and not await self._deliver_chunk(chunk, generation):
                    # The handler failed and stopped the app: deliver nothing more (a later
                    # chunk must not be handled, let alone acknowledged, past this one).
                    log.critical("a batch failed: the consumer stops delivering")
                    return
                if rest:
                    await self._deliver_each(rest, generation)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    self.commit_in_background()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _seek_back(self) -> None:
        """Seek the stream partitions to their committed offsets after a rebalance began. The
        assignment can change again during the seek (aiokafka then raises IllegalStateError
        for a partition no longer assigned; CI saw it stop a worker in the rebalance test): that
        rebalance's table recovery seeks every stream partition to its committed offset before
        the flow resumes, so the seek is left to it — as faust's own getmany does."""
        try:
            await self.perform_seek()
        except (KafkaError, AssertionError) as exc:  # aiokafka asserts an assignment exists
            log.warning("seek to committed offsets during a rebalance: %r; the rebalance's "
                        "recovery seeks again before the flow resumes", exc)  # fmt: skip

    async def _top_up(self, records: Mapping[TP, list[Any]], active: set[TP] | None
                      ) -> Mapping[TP, list[Any]]:  # fmt: skip
        """``records`` with what the fetcher brings within ``top_up_s``, up to the fetch's
        limit (``broker_max_poll_records``), in one chunk.

        aiokafka fetches a partition again only once its buffered records are taken. While the
        handler was busy with the last chunk, the fetcher fetched once (as that chunk began) and
        then held those records: handed over alone, the freshest of them are as old as the
        handler's whole last turn, and what arrived during that turn waits for another one.
        Taking them starts the next fetch; its answer joins them, so the chunk holds what was
        in Kafka when it began (each partition's records stay in offset order: the second
        fetch starts where the first ended). At 2,000 events/s events waited 2.1–2.5 turns of
        the handler before their batch began without it, 1.1–1.2 with it (``python -m
        hub.bench.latency``; docs/BENCHMARKS.md, eleventh round)."""
        limit = self.app.conf.broker_max_poll_records or 0
        taken = sum(len(recs) for recs in records.values())
        if limit and taken >= limit:
            return records  # a full fetch: a backlog, nothing to gain by waiting
        more = await self._fetch_more(active, self.top_up_s, limit - taken if limit else None)
        if not more:
            return records
        merged = {tp: list(recs) for tp, recs in records.items()}
        for tp, recs in more.items():
            merged.setdefault(tp, []).extend(recs)
        return merged

    async def _fetch_more(self, active: set[TP] | None, timeout: float,
                          max_records: int | None) -> Mapping[TP, list[Any]]:  # fmt: skip
        """faust's ``getmany`` with a limit of our own: the consumer thread's fetch, as
        ``_wait_next_records`` calls it (hub/kafka/faust_compat.py)."""
        thread: Any = self._thread  # faust_compat: FETCH
        records: Mapping[TP, list[Any]] = await thread.call_thread(
            thread._fetch_records, thread._ensure_consumer(), active, timeout=timeout,
            max_records=max_records)  # fmt: skip
        return records

    def commit_in_background(self) -> None:
        """Commit what is acknowledged while the next chunk is handled. faust's commit flushes
        the producer and waits for the group coordinator through the consumer's thread; awaited
        in this loop, every other chunk waited for it at 2,000 events/s, and the latency at that
        rate halved without it (docs/BENCHMARKS.md, tenth round). faust runs one commit at a
        time (a commit called while one runs waits for it and returns), as its periodic commit
        already runs beside this loop; one still running here is not started again."""
        if self._background_commit is None or self._background_commit.done():
            self._background_commit = asyncio.ensure_future(self._commit_logged())

    async def _commit_logged(self) -> None:
        try:
            await self.commit()
        except Exception:  # faust crashes the app on a commit it cannot make; never unseen
            log.exception("committing offsets failed")

    def _split(self, records: Mapping[TP, Sequence[Any]], active: set[TP] | None
               ) -> tuple[dict[TP, list[Any]], dict[TP, list[Any]]]:  # fmt: skip
        """The fetch's records in two: the chunk (hub topics), the rest (faust's own path).
        Records below a partition's read offset (fetched before a seek back) are dropped, as
        faust drops them."""
        chunk: dict[TP, list[Any]] = {}
        rest: dict[TP, list[Any]] = {}
        read_offset = self._read_offset
        buffered = self._buffered_partitions
        for tp, recs in records.items():
            if active is not None and tp not in active and tp not in buffered:
                continue
            if tp.topic not in self.chunk_topics:
                rest[tp] = list(recs)
                continue
            start = read_offset[tp]
            kept = [r for r in recs if start is None or r.offset >= start]
            if kept:
                chunk[tp] = kept
        return chunk, rest

    async def _deliver_chunk(self, chunk: dict[TP, list[Any]], generation: int) -> bool:
        """The chunk through the handler, its offsets acknowledged; False when it failed."""
        handler = cast(ChunkHandler, self.chunk_handler)
        # Counted as in flight until acknowledged: a rebalance waits for it (wait_empty).
        first_tp, first = next(iter(chunk.items()))
        token = self._to_message(first_tp, first[0])
        self._unacked_messages.add(token)
        try:
            handled = await handler(chunk)
            if handled is None:
                return False  # the handler failed and stopped the app: nothing acknowledged
            for tp, offsets in handled.items():
                self.acknowledge_range(tp, offsets)
                if self.app.consumer_generation_id == generation:
                    self._read_offset[tp] = offsets.stop
            return True
        finally:
            self._unacked_messages.discard(token)
            notify(self._waiting_for_ack)

    def acknowledge_range(self, tp: TP, offsets: range) -> int:
        """Acknowledge handled offsets to faust's commit bookkeeping (what ``Consumer.ack`` does
        for one message, for a range at once); the number newly acknowledged."""
        committed = self._committed_offset[tp]
        index = self._acked_index[tp]
        acked = self._acked[tp]
        new = [o for o in offsets if (committed is None or o >= committed) and o not in index]
        index.update(new)
        acked.extend(new)
        self._n_acked += len(new)
        return len(new)

    async def _deliver_each(self, rest: dict[TP, list[Any]], generation: int) -> None:
        """faust's own path for the other topics: one message at a time to the conductor."""
        callback = self.callback
        to_message = self._to_message
        read_offset = self._read_offset
        for tp, record in self.scheduler.iterate(rest):
            if not self.flow_active or self.app.consumer_generation_id != generation:
                break
            offset = record.offset
            start = read_offset[tp]
            if start is not None and offset < start:
                continue
            await self.wait_first(callback(to_message(tp, record)), self.suspend_flow.wait())
            read_offset[tp] = offset


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`Consumer`; selected by ``broker="hubkafka://…"``."""

    Consumer: ClassVar[type[Consumer]] = Consumer
    default_port = 9092


def take_in_chunks(app: faust.App, topics: Sequence[str], handler: ChunkHandler,
                   top_up_s: float = 0.0) -> None:  # fmt: skip
    """Deliver the records of ``topics`` to ``handler`` a fetch at a time, a fetch taken after
    ``top_up_s`` or more in the handler topped up within ``top_up_s`` (0: never; see
    :meth:`Consumer._top_up`). The app's broker must be ``hubkafka://``
    (:func:`hub.kafka.client.faust_broker` with ``scheme=SCHEME``)."""
    consumer = app.consumer
    if not isinstance(consumer, Consumer):
        raise TypeError(f"the app's consumer is {type(consumer).__name__}, not the hub's: "
                        f"its broker URL must start with {SCHEME}://")  # fmt: skip
    consumer.chunk_topics = frozenset(topics)
    consumer.chunk_handler = handler
    consumer.top_up_s = max(0.0, top_up_s)
    for topic in topics:  # subscribed without an agent: no stream ever sees their messages
        app.topics.add(app.topic(topic, key_serializer="raw", value_serializer="raw"))
