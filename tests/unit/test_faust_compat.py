"""Contract tests of every assumption hub/kafka/faust_compat.py makes about faust's private
parts: an upgrade that changes one fails here, by name."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import faust
import pytest
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer

from hub.kafka import faust_compat


def test_faust_is_the_minor_version_these_contracts_cover() -> None:
    assert faust.__version__.startswith("0.15."), faust.__version__


def test_a_table_on_the_keyed_partitioner_needs_no_faust_event() -> None:
    """The worker writes case state from its chunk handler, outside any faust stream: the table
    is built with ``use_partitioner``, so faust asks for no current event and leaves the
    changelog partition to the producer's partitioner (Kafka's default, as for the tasks)."""
    app = faust.App("compat-table", broker="memory://", store="memory://")
    table = app.Table("cases", key_type=bytes, partitions=12, use_partitioner=True)
    assert table.partition_for_key(b"case-id") is None
    plain = app.Table("plain", key_type=bytes, partitions=12)
    with pytest.raises(TypeError):  # without it, a write outside a stream is refused
        plain.partition_for_key(b"case-id")


def test_recovery_completion_is_a_coroutine_taking_the_generation() -> None:
    signature = inspect.signature(Recovery.on_recovery_completed)
    assert list(signature.parameters) == ["self", "generation_id"]
    assert inspect.iscoroutinefunction(Recovery.on_recovery_completed)


async def test_the_completion_hook_runs_before_and_after_fausts_own() -> None:
    calls: list[str] = []

    async def original(generation_id: int = 0) -> None:
        calls.append(f"faust {generation_id}")

    async def before() -> None:
        calls.append("before")

    recovery = SimpleNamespace(on_recovery_completed=original)
    app = SimpleNamespace(tables=SimpleNamespace(recovery=recovery))
    faust_compat.on_recovery_completed(app, before, lambda: calls.append("after"))  # type: ignore[arg-type]
    await recovery.on_recovery_completed(7)
    assert calls == ["before", "faust 7", "after"]


def test_the_producer_buffer_has_a_max_messages_setting() -> None:
    assert ProducerBuffer().max_messages == 100  # faust's default, which the worker raises


@pytest.mark.parametrize("name", ["on_setup_root_logger"])
def test_the_worker_spinner_is_set_up_where_the_quiet_worker_expects(name: str) -> None:
    assert list(inspect.signature(getattr(faust.Worker, name)).parameters) == [
        "self", "logger", "level",
    ]  # fmt: skip
    assert "spinner" in inspect.getsource(faust.Worker)
    assert faust_compat.QuietWorker.on_setup_root_logger is not faust.Worker.on_setup_root_logger


def test_aiokafka_does_not_seek_to_a_committed_offset_of_zero() -> None:
    """Why ``seek_committed_zero`` exists: if this changes, the workaround can go."""
    from aiokafka import AIOKafkaConsumer

    assert "if offset and offset > 0" in inspect.getsource(AIOKafkaConsumer.seek_to_committed)


def test_faust_seeks_through_its_consumers_seek_to_committed_and_seek() -> None:
    from faust.transport.drivers.aiokafka import Consumer as AIOKafkaDriverConsumer

    assert "self.seek_to_committed()" in inspect.getsource(Consumer.perform_seek)
    assert inspect.iscoroutinefunction(AIOKafkaDriverConsumer.seek_to_committed)
    assert inspect.iscoroutinefunction(Consumer.seek)
    assert list(inspect.signature(Consumer.seek).parameters) == ["self", "partition", "offset"]


async def test_partitions_committed_at_zero_are_sought_to_zero() -> None:
    seeks: list[tuple[str, int]] = []

    class FakeConsumer:
        async def seek_to_committed(self) -> dict[str, int | None]:
            return {"a": 0, "b": 5, "c": None}

        async def seek(self, tp: str, offset: int) -> None:
            seeks.append((tp, offset))

    app = SimpleNamespace(consumer=FakeConsumer())
    faust_compat.seek_committed_zero(app)  # type: ignore[arg-type]
    faust_compat.seek_committed_zero(app)  # type: ignore[arg-type]  # twice: wrapped once
    assert await app.consumer.seek_to_committed() == {"a": 0, "b": 5, "c": None}
    assert seeks == [("a", 0)]


async def test_under_fausts_producer_is_aiokafkas_with_record_batches() -> None:
    from aiokafka import AIOKafkaProducer
    from faust.exceptions import NotReady

    from hub.kafka.faust_compat import aiokafka_producer

    app = faust.App("compat-producer", broker="kafka://127.0.0.1:9092",
                    producer_max_batch_size=4096)  # fmt: skip
    with pytest.raises(NotReady):  # before faust started it: a clear error, not a new producer
        aiokafka_producer(app)
    producer = app.producer._new_producer()  # what _ensure_producer hands out once started
    assert isinstance(producer, AIOKafkaProducer)
    batch = producer.create_batch()
    assert batch.append(key=b"k", value=b"v", timestamp=None) is not None
    assert asyncio.iscoroutinefunction(producer.send_batch)
    assert asyncio.iscoroutinefunction(producer.partitions_for)


def test_a_table_of_bytes_keeps_the_bytes_it_is_given_and_recovers_json_written_before() -> None:
    """The worker's case table holds the tracker's serialised cases (``value_type=bytes``):
    faust must send them to the changelog as they are, and give back as bytes what its json
    serializer wrote there before (a changelog of an earlier version)."""
    from faust.serializers import codecs

    app = faust.App("compat-raw", broker="memory://", store="memory://")
    table = app.Table("cases", key_type=bytes, value_type=bytes, partitions=12,
                      use_partitioner=True)  # fmt: skip
    assert table.value_serializer == table.changelog_topic.value_serializer == "raw"
    before = codecs.dumps("json", {"case_id": "c", "steps": {}, "status": "OPEN", "note": "ế"})
    assert app.serializers.loads_value(bytes, before, serializer="raw") == before
    assert app.serializers.dumps_value(bytes, b'{"a":1}', serializer="raw") == b'{"a":1}'
