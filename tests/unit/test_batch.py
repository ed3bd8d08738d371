"""The worker's batch logic without faust or Kafka: the real outbox over a fake producer, a
real (SQLite) store.

What is asserted is the contract the crash tests rely on: a batch's offsets may move only after
every output is in Kafka and the store transaction committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from prometheus_client import CollectorRegistry

from hub.domain.topics import POPULATION_TOPIC, SourceTopic, dead_letter_topic
from hub.kafka.outbox import MAX_BATCH_BYTES, Outbox
from hub.metrics import HubMetrics
from hub.sim.traffic import Traffic
from hub.store.sql import Store, open_store
from hub.stream.batch import BatchProcessor
from hub.stream.dead_letters import DeadLetterLimit
from hub.stream.pipeline import Pipeline, PipelineConfig
from hub.stream.register import RegisterCache, register_row
from hub.stream.retry import StoreFailed
from hub.types import Incoming
from hub.wire.codec import Codec
from tests.conftest import samples

T = TypeVar("T")
CODEC = Codec()


class FakeKafka:
    """A producer of record batches (aiokafka's real builder) that records every message sent
    and acknowledges when told to (or fails every send)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []
        self.futures: list[asyncio.Future[None]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0, is_transactional=False,
                            key_serializer=None, value_serializer=None)  # fmt: skip

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        self.sent.extend((topic, r.key) for r in DefaultRecordBatch(bytes(batch._build())))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(12))

    def acknowledge(self) -> None:
        for f in self.futures:
            if not f.done():
                f.set_result(None)

    def fail(self) -> None:
        for f in self.futures:
            if not f.done():
                f.set_exception(ConnectionError("broker gone"))


def processor(store: Store, kafka: FakeKafka, *, fail: set[str] | None = None,
              window: int = 1000) -> BatchProcessor:  # fmt: skip
    class Retry:  # StoreRetry without waits: the calls named in ``fail`` failed for good
        async def required(self, what: str, call: Callable[[], T]) -> T:
            if fail and what in fail:
                raise StoreFailed(f"the store failed for good ({what})")
            return call()

    return BatchProcessor(
        pipeline=Pipeline(CODEC, PipelineConfig()), codec=CODEC,
        metrics=HubMetrics.create(CollectorRegistry()), out=Outbox(lambda: kafka),
        store=lambda: store,
        retry=Retry(), register=RegisterCache(CODEC, 1000, 30),
        population_topic=POPULATION_TOPIC, limit=DeadLetterLimit(window, 0.5), worker_name="t",
    )  # fmt: skip


@pytest.fixture
def traffic() -> Traffic:
    return Traffic(CODEC, seed=8, provinces=2, population=200, now=datetime.now(UTC))


@pytest.fixture
def store(tmp_path: Path, traffic: Traffic) -> Store:
    s = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    from hub.domain.records import PopulationRecord

    rows = [register_row(p, CODEC.encode(PopulationRecord.SCHEMA, p.to_avro()), 0, i)
            for i, p in enumerate(traffic.people)]  # fmt: skip
    s.apply_register(POPULATION_TOPIC, rows, [], {0: len(rows)})
    return s


async def run_acknowledged(work: BatchProcessor, kafka: FakeKafka, batch: list[Incoming]) -> bool:
    """Run a batch while Kafka acknowledges what it was sent (a moment later)."""
    running = asyncio.create_task(work.run(batch))
    await asyncio.sleep(0.05)
    kafka.acknowledge()
    return await running


def batch_of(traffic: Traffic, n: int, poison: float = 0.0) -> list[Incoming]:
    return [Incoming(m.topic, 0, i, m.key, m.value)
            for i, m in enumerate(traffic.stream(n, poison))]  # fmt: skip


def stored(store: Store) -> int:
    return int(store.query("SELECT count(*) FROM events")[0][0])


async def test_offsets_may_move_only_after_kafka_and_the_store_have_the_batch(
    store: Store, traffic: Traffic
) -> None:
    kafka = FakeKafka()
    batch = batch_of(traffic, 200)
    running = asyncio.create_task(processor(store, kafka).run(batch))
    await asyncio.sleep(0.05)
    assert not running.done(), "waits for Kafka's acknowledgements"
    assert len(kafka.sent) >= 200 and stored(store) == 0, "nothing stored before Kafka has it"
    kafka.acknowledge()
    assert await running is True
    assert stored(store) == 200


async def test_a_failed_produce_stores_nothing_and_acknowledges_nothing(
    store: Store, traffic: Traffic
) -> None:
    kafka = FakeKafka()
    running = asyncio.create_task(processor(store, kafka).run(batch_of(traffic, 50)))
    await asyncio.sleep(0.05)
    kafka.fail()
    with pytest.raises(ConnectionError):
        await running
    assert stored(store) == 0


@pytest.mark.parametrize("failing", ["read", "register", "write", "dead letters"])
async def test_a_store_that_fails_for_good_acknowledges_nothing(
    store: Store, traffic: Traffic, failing: str
) -> None:
    kafka = FakeKafka()
    work = processor(store, kafka, fail={failing})
    assert await run_acknowledged(work, kafka, batch_of(traffic, 100, poison=0.1)) is False
    assert work.failure is not None and failing in str(work.failure)


async def test_poison_is_dead_lettered_to_kafka_and_recorded_in_the_store(
    store: Store, traffic: Traffic
) -> None:
    kafka = FakeKafka()
    batch = batch_of(traffic, 300, poison=0.05)
    assert await run_acknowledged(processor(store, kafka), kafka, batch) is True
    letters = [t for t, _ in kafka.sent if t.startswith("dlq.")]
    recorded = int(store.query("SELECT count(*) FROM dead_letters")[0][0])
    assert letters and recorded == len(letters)
    assert all(t in {dead_letter_topic(s.value) for s in SourceTopic} for t in letters)
    assert stored(store) + recorded == len(batch)


async def test_a_replayed_batch_stores_nothing_twice(store: Store, traffic: Traffic) -> None:
    kafka = FakeKafka()
    batch = batch_of(traffic, 100)
    for _ in range(2):
        assert await run_acknowledged(processor(store, kafka), kafka, batch) is True
    assert stored(store) == 100


async def test_too_many_dead_letters_stop_before_anything_is_acknowledged(
    store: Store, traffic: Traffic
) -> None:
    kafka = FakeKafka()
    work = processor(store, kafka, window=20)
    poison = [Incoming(SourceTopic.BIRTH.value, 0, i, b"k", b"\x00garbage") for i in range(30)]
    assert await work.run(poison) is False
    assert work.failure is not None and "dead-lettered" in str(work.failure)
    assert stored(store) == 0


async def test_a_birth_and_the_childs_death_in_one_batch_see_each_other(
    store: Store, traffic: Traffic
) -> None:
    from hub.domain.events import BirthRegistration, DeathRegistration

    birth: BirthRegistration = traffic.event(SourceTopic.BIRTH)  # type: ignore[assignment]
    death: DeathRegistration = traffic.event(SourceTopic.DEATH)  # type: ignore[assignment]
    death = death.model_copy(update={
        "deceased_id": birth.child_id, "deceased_full_name": birth.child_full_name,
        "deceased_sex": birth.child_sex, "deceased_date_of_birth": birth.child_date_of_birth,
    })  # fmt: skip
    messages = [traffic.message(birth), traffic.message(death)]
    batch = [Incoming(m.topic, 0, i, m.key, m.value) for i, m in enumerate(messages)]
    kafka = FakeKafka()
    assert await run_acknowledged(processor(store, kafka), kafka, batch) is True
    issues = store.query("SELECT quality_issues FROM events WHERE event_id = ?",
                         [str(death.event_id)])  # fmt: skip
    assert issues and "subject_unknown" not in str(issues[0][0])
    registered = [k for t, k in kafka.sent if t == POPULATION_TOPIC]
    assert registered == [birth.child_id.encode(), birth.child_id.encode()], "born, then deceased"


async def test_each_step_of_a_batch_is_timed_in_the_stage_histogram(
    store: Store, traffic: Traffic
) -> None:
    """Where a batch's time goes (the pipeline, Kafka's acknowledgements, the store) is what an
    operator reads when latency grows: one observation a step a batch."""
    kafka = FakeKafka()
    work = processor(store, kafka)
    for _ in range(2):
        sent = len(kafka.sent)
        running = asyncio.create_task(work.run(batch_of(traffic, 50)))
        while len(kafka.sent) == sent:  # submitted: the outputs are with Kafka
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.03)
        kafka.acknowledge()
        assert await running is True
    timed = samples(work.metrics.stage_seconds)
    for stage in ("submit", "produce", "store"):
        assert timed[("hub_stage_duration_seconds_count", (("stage", stage),))] == 2, stage
    # Kafka acknowledged each batch 30 ms after it had it: that wait is produce's, not submit's.
    assert timed[("hub_stage_duration_seconds_sum", (("stage", "produce"),))] >= 0.06
