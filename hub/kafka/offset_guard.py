"""Nothing skipped: notice when the consumer jumps over offsets, and read the skipped ones back.

faust 0.15's consumer can drop a message it has fetched when a seek runs while its drainer is
delivering (it seeks on every recovery; seen in the crash and 20,000-event tests under load:
offsets ``n`` and ``n + 2`` reached the agent, ``n + 1`` never did). Source and agency topics
are written by plain producers, so their offsets have no holes: an agent that receives offset
``o`` on a partition where it expected ``e < o`` knows ``e … o-1`` were skipped. The guard
reads exactly those back with its own group-less consumer, so the agent handles them, in
partition order, before ``o``. Offsets are committed only after handling, so a skipped message
is never committed past either (faust's own gap filling, which would, is in the per-message
drain the hub's transport replaces).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.kafka.client import Connectable, options

log = logging.getLogger("hub.worker")

Partition = tuple[str, int]

# A re-read that returns nothing this many times in a row gives up (the messages are gone,
# e.g. deleted by retention); the agent then goes on from the offset it has.
EMPTY_FETCHES = 5


def skipped(expected: int | None, offset: int) -> range:
    """The offsets jumped over when ``offset`` arrives where ``expected`` was next (or none)."""
    if expected is None or offset <= expected:
        return range(0)
    return range(expected, offset)


class OffsetGuard:
    """Tracks the next offset each agent expects per partition; re-reads what was skipped."""

    def __init__(self, kafka: Connectable) -> None:
        self.kafka = kafka
        self.expected: dict[Partition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()  # agents share the reading consumer

    def reset(self, committed: Mapping[Partition, int]) -> None:
        """Expect the group's committed offsets next (before the stream partitions resume)."""
        self.expected.clear()
        self.expected.update(committed)

    async def before(self, topic: str, partition: int, offset: int,
                     through: int | None = None) -> list[Any]:  # fmt: skip
        """The records skipped before ``offset`` (usually none); marks ``offset`` (or all up to
        ``through``, for a chunk) as seen."""
        gap = skipped(self.expected.get((topic, partition)), offset)
        self.expected[(topic, partition)] = (offset if through is None else through) + 1
        if not gap:
            return []
        log.warning("consumer skipped %s/%s offsets %d..%d; reading them back",
                    topic, partition, gap.start, gap.stop - 1)  # fmt: skip
        return await self.read(topic, partition, gap)

    async def read(self, topic: str, partition: int, offsets: range) -> list[Any]:
        async with self._lock:
            return await self._read(topic, partition, offsets)

    async def _read(self, topic: str, partition: int, offsets: range) -> list[Any]:
        consumer = await self._ensure_consumer()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offsets.start)
        records: list[Any] = []
        empty = 0
        while empty < EMPTY_FETCHES:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1000)
            got = batch.get(tp, [])
            if not got:
                empty += 1
                continue
            empty = 0
            records.extend(r for r in got if r.offset in offsets)
            if got[-1].offset >= offsets.stop - 1:
                return records
        log.error("could not read back %s/%s offsets %d..%d (got %d); going on",
                  topic, partition, offsets.start, offsets.stop - 1, len(records))  # fmt: skip
        return records

    async def _ensure_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                **options(self.kafka), group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest",
            )  # fmt: skip
            await self._consumer.start()
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
