"""The outbox sends a batch's messages as record batches, on the partitions Kafka's default
partitioner gives (aiokafka's own DefaultPartitioner is the oracle), and returns only when every
batch is acknowledged."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder, MessageBatch
from aiokafka.record.default_records import DefaultRecordBatch

from hub.kafka.outbox import Outbox

PARTITIONS = {"hub.civil_status.v1": 12, "agency.police.residence.v1": 12, "dlq.x": 3}


class FakeProducer:
    """aiokafka's real batch builder; sends recorded; acknowledged or failed on demand."""

    def __init__(self, batch_size: int = 16384, fail: bool = False) -> None:
        self.batch_size = batch_size
        self.fail = fail
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes]]]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0, is_transactional=False,
                            key_serializer=None, value_serializer=None)  # fmt: skip

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        buffer = batch._build()
        records = DefaultRecordBatch(bytes(buffer))
        self.sent.append((topic, partition, [(r.key, r.value) for r in records]))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(ConnectionError("broker gone"))
        else:
            future.set_result(None)
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS[topic]))


def kafka_partition(key: bytes, n: int) -> int:
    return int(DefaultPartitioner()(key, list(range(n)), list(range(n))))


async def test_each_message_lands_where_kafkas_default_partitioner_puts_it() -> None:
    producer = FakeProducer()
    counted: Counter[str] = Counter()
    outbox = Outbox(lambda: producer, lambda topic, n: counted.update({topic: n}))
    keys = [f"079{n:09d}".encode() for n in range(300)]
    for key in keys:
        await outbox.add("hub.civil_status.v1", key, b"u" + key)
        await outbox.add("agency.police.residence.v1", key, b"t" + key)
    await outbox.flush()
    got = {(topic, k): p for topic, p, msgs in producer.sent for k, _ in msgs}
    for key in keys:
        assert got[("hub.civil_status.v1", key)] == kafka_partition(key, 12)
        assert got[("agency.police.residence.v1", key)] == kafka_partition(key, 12)
    assert counted == {"hub.civil_status.v1": 300, "agency.police.residence.v1": 300}
    assert len(outbox) == 0, "a flush empties the outbox"


async def test_a_full_batch_continues_in_another_and_nothing_is_lost_or_reordered() -> None:
    producer = FakeProducer(batch_size=2048)
    outbox = Outbox(lambda: producer)
    values = [bytes([i % 256]) * 300 for i in range(40)]
    for v in values:
        await outbox.add("dlq.x", b"same-key", v)
    await outbox.flush()
    batches = [msgs for _, _, msgs in producer.sent]
    assert len(batches) > 1, "40 × 300 bytes do not fit one 2 KiB batch"
    assert [v for msgs in batches for _, v in msgs] == values


async def test_messages_without_a_key_are_spread_over_the_partitions() -> None:
    producer = FakeProducer()
    outbox = Outbox(lambda: producer)
    for i in range(9):
        await outbox.add("dlq.x", None, b"%d" % i)
    await outbox.flush()
    assert sorted(p for _, p, _ in producer.sent) == [0, 1, 2]


async def test_a_failed_batch_makes_the_flush_raise() -> None:
    outbox = Outbox(lambda: FakeProducer(fail=True))
    await outbox.add("dlq.x", b"k", b"v")
    with pytest.raises(ConnectionError):
        await outbox.flush()


async def test_a_message_larger_than_a_batch_goes_alone_in_its_own() -> None:
    """aiokafka's builder takes one message of any size into an empty batch (the broker then
    judges it against message.max.bytes): the outbox must not loop or drop it."""
    producer = FakeProducer(batch_size=512)
    outbox = Outbox(lambda: producer)
    await outbox.add("dlq.x", b"k", b"small")
    await outbox.add("dlq.x", b"k", b"x" * 4096)
    await outbox.flush()
    assert [[v for _, v in msgs] for _, _, msgs in producer.sent] == [[b"small"], [b"x" * 4096]]


async def test_a_batch_is_sent_complete_without_waiting_out_the_linger() -> None:
    """aiokafka holds an open batch for the producer's linger (it could still take messages
    from send()); the outbox's batches are complete, so it closes them and the sender takes
    them at once. aiokafka's own MessageBatch is the oracle."""
    producer = FakeProducer()
    lingers: list[float | None] = []
    send = producer.send_batch

    async def recording(batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        # What aiokafka's sender would see of the batch as it is handed over.
        lingers.append(MessageBatch((topic, partition), batch, 60, 0.5).remaining_linger())
        return await send(batch, topic, partition=partition)

    producer.send_batch = recording  # type: ignore[method-assign]
    outbox = Outbox(lambda: producer)
    await outbox.add("dlq.x", b"k", b"v")
    await outbox.add("hub.civil_status.v1", b"k", b"v")
    await outbox.flush()
    assert MessageBatch(("dlq.x", 0), producer.create_batch(), 60, 0.5).remaining_linger(), (
        "an open batch would wait out the linger"
    )
    assert lingers == [None, None], "each batch handed over complete"
