"""A batch's outgoing messages, sent as whole Kafka record batches.

``producer.send()`` costs ~7–8 µs a message on the client (future, accumulator lookup, a
pure-Python murmur2); appending to a record batch made with ``create_batch()`` (aiokafka's C
builder) costs ~0.4 µs (../shared/notes/faust-internals.md, docs/BENCHMARKS.md). The worker's
outputs are known a batch at a time, so :class:`Outbox` collects them per topic partition and
:meth:`Outbox.flush` sends each partition's records with ``send_batch``, waiting until Kafka
acknowledged every one.

Partitions are what Kafka's default partitioner gives (murmur2 of the key, as the Java client
and aiokafka's ``send`` compute it), so consumers keyed on a case or a person see the same
partitioning as before; the hashes of a flush's keys are computed together
(hub/kafka/partitioner.py), once per key. A message without a key goes round-robin.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hub.kafka.partitioner import key_hashes

Headers = Sequence[tuple[str, bytes | None]]
# Above the broker's default message.max.bytes (1 MiB) a batch is refused; a quarter of it keeps
# requests small while batches of a few hundred records still fit in one.
MAX_BATCH_BYTES = 256 * 1024


class BatchProducer(Protocol):
    """The part of aiokafka's ``AIOKafkaProducer`` an outbox uses."""

    def create_batch(self) -> Any: ...

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any: ...

    async def partitions_for(self, topic: str) -> set[int]: ...


class Outbox:
    """Messages added during a batch; :meth:`flush` sends them, per partition, as record
    batches and returns once Kafka acknowledged all of them (or raises: nothing may then be
    acknowledged upstream)."""

    def __init__(self, producer: Callable[[], BatchProducer],
                 count: Callable[[str, int], None] | None = None) -> None:  # fmt: skip
        """``producer`` gives the (started) producer when the outbox first needs it."""
        self._producer = producer
        self.count = count
        self._partitions: dict[str, int] = {}
        self._round_robin = itertools.count()
        # Added since the last flush, in order: (topic, key, value, headers).
        self._pending: list[tuple[str, bytes | None, bytes, Headers]] = []

    @property
    def producer(self) -> BatchProducer:
        return self._producer()

    def __len__(self) -> int:
        return len(self._pending)

    async def add(self, topic: str, key: bytes | None, value: bytes,
                  headers: Headers = ()) -> None:  # fmt: skip
        if topic not in self._partitions:
            self._partitions[topic] = len(await self.producer.partitions_for(topic))
        self._pending.append((topic, key, value, headers))

    def _by_partition(self) -> dict[tuple[str, int], list[tuple[bytes | None, bytes, Headers]]]:
        """What was added since the last flush, per topic partition, in the order added."""
        added, self._pending = self._pending, []
        keys = list({key: None for _, key, _, _ in added if key is not None})
        hashes = dict(zip(keys, key_hashes(keys), strict=True))
        parts: dict[tuple[str, int], list[tuple[bytes | None, bytes, Headers]]] = {}
        for topic, key, value, headers in added:
            n = self._partitions[topic]
            partition = next(self._round_robin) % n if key is None else hashes[key] % n
            parts.setdefault((topic, partition), []).append((key, value, headers))
        return parts

    async def flush(self) -> None:
        """Send everything added since the last flush; return when Kafka has all of it."""
        pending = self._by_partition()
        sent: list[Any] = []
        per_topic: Counter[str] = Counter()
        for (topic, partition), messages in pending.items():
            per_topic[topic] += len(messages)
            batch = self.producer.create_batch()
            for key, value, headers in messages:
                if _append(batch, key, value, headers):
                    continue
                sent.append(await self._send(batch, topic, partition))
                batch = self.producer.create_batch()
                _append(batch, key, value, headers)  # an empty batch takes any one message
            sent.append(await self._send(batch, topic, partition))
        await asyncio.gather(*sent)
        if self.count is not None:
            for topic, n in per_topic.items():
                self.count(topic, n)

    async def _send(self, batch: Any, topic: str, partition: int) -> Any:
        # Closed, the batch is complete: aiokafka's sender takes it at once instead of holding it
        # for the producer's linger (an open batch could still take messages from send()).
        batch.close()
        return await self.producer.send_batch(batch, topic, partition=partition)


def _append(batch: Any, key: bytes | None, value: bytes, headers: Headers) -> bool:
    """Add one message to a record batch; False when the batch is full."""
    return batch.append(key=key, value=value, timestamp=None, headers=list(headers)) is not None
