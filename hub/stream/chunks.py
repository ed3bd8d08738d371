"""One fetch of the ``hubkafka://`` transport as one unit of work: its source records through the
batch processor, its agency tasks and acknowledgements into their cases, and the offsets it may
acknowledge — only once both are done.

No faust here: the transport calls :meth:`ChunkRouter.handle` with a chunk (records per topic
partition) and acknowledges the offset ranges it returns; None means nothing may be
acknowledged and the worker is stopping (``crash`` was called with why).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from hub.kafka.transport import Chunk, Handled
from hub.metrics import HubMetrics
from hub.types import Incoming

log = logging.getLogger("hub.worker")


class Batches(Protocol):
    @property
    def failure(self) -> BaseException | None: ...  # why the last batch failed

    async def run(self, batch: list[Incoming]) -> bool: ...


class Cases(Protocol):
    async def run(self, messages: list[Incoming]) -> None: ...


class Positions(Protocol):  # the consumer's view of its partitions (faust's Consumer)
    def assignment(self) -> set[Any]: ...

    def highwater(self, tp: Any) -> int | None: ...


class Guard(Protocol):
    async def before(self, topic: str, partition: int, offset: int,
                     through: int | None = None) -> list[Any]: ...  # fmt: skip


class ChunkRouter:
    def __init__(self, *, sources: Collection[str], batches: Batches, cases: Cases, guard: Guard,
                 register_ready: asyncio.Event, metrics: HubMetrics,
                 crash: Callable[[BaseException], Awaitable[None]]) -> None:  # fmt: skip
        self.sources = frozenset(sources)
        self.batches = batches
        self.cases = cases
        self.guard = guard
        self.register_ready = register_ready
        self.metrics = metrics
        self.crash = crash
        # The last offset handled on each partition: the lag reported beside the high water.
        self.last_offset: dict[tuple[str, int], int] = {}

    async def handle(self, chunk: Chunk) -> Handled | None:
        """One fetch as one batch. Offsets are acknowledged only after the outputs are in Kafka
        (and source events in the store): a crash replays at most this.

        The source batch and the agency messages' cases run side by side: they share no state
        (tasks come back to the cases through Kafka, not from the batch), and while one waits
        for Kafka to acknowledge its outputs the other has the loop. Both must succeed before
        anything is acknowledged; when either fails, both are let finish, nothing of the chunk is
        acknowledged and the worker stops (the restart replays the chunk)."""
        if not self.register_ready.is_set():  # identity checks need the register caught up
            log.info("waiting for the register feed to catch up")
            await self.register_ready.wait()
        sources = {tp: records for tp, records in chunk.items() if tp.topic in self.sources}
        agency = {tp: records for tp, records in chunk.items() if tp.topic not in self.sources}
        batch, handled = await self.gather(sources)
        messages, covered = await self.gather(agency)
        handled.update(covered)
        runs: list[Awaitable[BaseException | None]] = []
        if batch:
            runs.append(self._batch(batch))
        if messages:
            runs.append(self._cases(messages))
        if not runs:
            return handled
        with self.metrics.stage_seconds.labels("chunk").time():  # the turn: both, side by side
            failures = [f for f in await asyncio.gather(*runs) if f is not None]
        if failures:
            await self.crash(failures[0])
            return None
        return handled

    async def _batch(self, batch: list[Incoming]) -> BaseException | None:
        """The source batch; why it failed, or None."""
        try:
            if await self.batches.run(batch):
                return None
        except Exception as exc:  # noqa: BLE001 - Kafka refused the outputs: stop, ack nothing
            log.critical("batch failed (%s); stopping the worker", exc)
            return exc
        return self.batches.failure or RuntimeError("batch failed")

    async def _cases(self, messages: list[Incoming]) -> BaseException | None:
        """The agency messages' cases; why they failed, or None."""
        try:
            await self.cases.run(messages)
        except Exception as exc:  # noqa: BLE001 - Kafka or the store refused: stop, ack nothing
            log.critical("case batch failed (%s); stopping the worker", exc)
            return exc
        return None

    def report_lag(self, consumer: Positions) -> None:
        """Lag of each assigned partition this worker has handled records of, beside its high
        water. faust's aiokafka consumer runs in a thread of its own, so a rebalance can revoke a
        partition between ``assignment()`` and ``highwater()``: aiokafka then asserts "Partition
        is not assigned" (or finds no assignment at all). Such a partition is skipped until the
        next report; a metric must never stop the worker (the likely, unproven cause of a stop CI
        saw mid-rebalance)."""
        for tp in consumer.assignment():
            done = self.last_offset.get((tp.topic, tp.partition))
            if done is None:
                continue
            try:
                high = consumer.highwater(tp)
            except (AssertionError, KeyError, AttributeError):  # revoked meanwhile
                continue
            if high is not None:
                lag = max(0, high - done - 1)
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    async def gather(self, parts: Chunk) -> tuple[list[Incoming], dict[Any, range]]:
        """A chunk's records (with any the consumer skipped, read back) and, per partition, the
        offsets they cover."""
        batch: list[Incoming] = []
        handled: dict[Any, range] = {}
        for tp, records in parts.items():
            first, last = records[0].offset, records[-1].offset
            skipped = await self.read_back(tp.topic, tp.partition, first, last)
            batch.extend(map(Incoming.of, skipped))
            batch.extend(map(Incoming.of, records))
            self.last_offset[(tp.topic, tp.partition)] = last
            handled[tp] = range(skipped[0].offset if skipped else first, last + 1)
        return batch, handled

    async def read_back(self, topic: str, partition: int, offset: int,
                        through: int | None = None) -> list[Any]:  # fmt: skip
        """What the consumer skipped before ``offset`` on its partition (usually nothing), read
        back; ``through`` is the last offset of a chunk starting at ``offset``."""
        skipped = await self.guard.before(topic, partition, offset, through)
        if skipped:
            self.metrics.offsets_reread.labels(topic).inc(len(skipped))
        return skipped
