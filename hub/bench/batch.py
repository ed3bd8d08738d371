"""The worker's batch path in one process, without Kafka: microseconds an event of
:class:`~hub.stream.batch.BatchProcessor` over the simulator's mix, batches as a busy worker
gets them.

Run: ``python -m hub.bench.batch [--events N] [--batch N] [--runs R]``. Everything the worker's
main thread does per batch runs as in ``hub worker`` — decode, the lineage and register queries,
the pipeline, encoding, the outbox's record batches (aiokafka's own builder) and the SQLite
store transaction — except the network: the producer builds each record batch and Kafka
"acknowledges" it at once. The agency tasks the batches sent then go, in chunks of the same size,
through the worker's case tracking (:class:`~hub.stream.cases.CaseTracker` over a dict as its
table, the same store, and the report timer's write of the changed cases to the store at the
end): its own line, in µs a task and a source event. Most of a worker's CPU
is its main thread's (81% of py-spy's samples on a worker draining a backlog,
docs/BENCHMARKS.md), so this is most of its CPU per event, without the broker and the producer
beside it; profile it with ``py-spy record -- python -m hub.bench.batch``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka.producer.message_accumulator import BatchBuilder
from prometheus_client import CollectorRegistry

from hub.bench.mix import bench_traffic
from hub.domain.records import PopulationRecord
from hub.domain.topics import POPULATION_TOPIC, TASK_TOPICS
from hub.kafka.outbox import MAX_BATCH_BYTES, Headers, Outbox
from hub.metrics import HubMetrics
from hub.settings import load_settings
from hub.store.sql import Store, open_store
from hub.stream.batch import BatchProcessor
from hub.stream.cases import CaseTracker
from hub.stream.dead_letters import DeadLetterLimit
from hub.stream.pipeline import Pipeline, PipelineConfig
from hub.stream.register import RegisterCache, register_row
from hub.types import Incoming
from hub.wire.codec import Codec

T = TypeVar("T")


class InstantKafka:
    """A producer whose record batches are built (as aiokafka's sender would) and acknowledged
    at once."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0, is_transactional=False,
                            key_serializer=None, value_serializer=None)  # fmt: skip

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        batch._build()  # what aiokafka's sender does with a closed batch (on this thread)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))


class TaskRecorder(Outbox):
    """An outbox that also keeps the agency tasks added to it, as the worker reads them back."""

    def __init__(self, kafka: InstantKafka) -> None:
        super().__init__(lambda: kafka)
        self.tasks: list[Incoming] = []

    async def add(self, topic: str, key: bytes | None, value: bytes,
                  headers: Headers = ()) -> None:  # fmt: skip
        if topic in TASK_TOPICS:
            self.tasks.append(Incoming(topic, 0, len(self.tasks), key, value))
        await super().add(topic, key, value, headers)


class NoRetry:
    async def required(self, what: str, call: Callable[[], T]) -> T:
        return call()


def messages(codec: Codec, events: int) -> tuple[list[Incoming], list[PopulationRecord]]:
    """The bench's mix (``hub bench``'s pre-load: seed, provinces, population) and its people."""
    traffic = bench_traffic(codec)
    people = list(traffic.people)
    made = [Incoming(m.topic, i % 12, i, m.key, m.value)
            for i, m in enumerate(traffic.stream(events))]  # fmt: skip
    return made, people


def processor(codec: Codec, store: Store, out: Outbox) -> BatchProcessor:
    settings = load_settings()
    return BatchProcessor(
        pipeline=Pipeline(codec, PipelineConfig()), codec=codec,
        metrics=HubMetrics.create(CollectorRegistry()), out=out,
        store=lambda: store, retry=NoRetry(),
        register=RegisterCache(codec, settings.register_cache_size,
                               settings.register_cache_ttl_s),
        population_topic=POPULATION_TOPIC,
        limit=DeadLetterLimit(settings.dlq_window, settings.dlq_max_ratio), worker_name="bench",
    )  # fmt: skip


def run_once(codec: Codec, batch: list[Incoming], people: list[PopulationRecord],
             size: int) -> tuple[float, float, int]:  # fmt: skip
    """µs an event of one pass over ``batch`` in batches of ``size``, on a fresh store holding
    the register; then µs a task of tracking the cases of the agency tasks it sent, and how
    many."""
    store = open_store(f"sqlite:///{tempfile.mkdtemp(prefix='hub-bench-batch-')}/store.sqlite3")
    try:
        rows = [register_row(p, codec.encode(PopulationRecord.SCHEMA, p.to_avro()), 0, i)
                for i, p in enumerate(people)]  # fmt: skip
        store.apply_register(POPULATION_TOPIC, rows, [], {0: len(rows)})
        kafka = InstantKafka(load_settings().partitions)
        out = TaskRecorder(kafka)
        work = processor(codec, store, out)
        cases = CaseTracker(codec=codec, metrics=HubMetrics.create(CollectorRegistry()),
                            out=Outbox(lambda: kafka), table={}, store=lambda: store,
                            retry=NoRetry(), worker_name="bench")  # fmt: skip

        async def drain() -> None:
            for i in range(0, len(batch), size):
                if not await work.run(batch[i : i + size]):
                    raise RuntimeError(f"the batch failed: {work.failure}")

        async def track() -> None:
            for i in range(0, len(out.tasks), size):
                await cases.run(out.tasks[i : i + size])
            await cases.store_changes(datetime.now(UTC))  # the report timer's write of the cases

        began = time.perf_counter()
        asyncio.run(drain())
        events_us = (time.perf_counter() - began) * 1e6 / len(batch)
        began = time.perf_counter()
        asyncio.run(track())
        task_us = (time.perf_counter() - began) * 1e6 / max(1, len(out.tasks))
        return events_us, task_us, len(out.tasks)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=500, help="events a batch (default 500)")
    parser.add_argument("--runs", type=int, default=3, help="passes, each on a fresh store")
    args = parser.parse_args()
    codec = Codec()
    batch, people = messages(codec, args.events)
    runs = [run_once(codec, batch, people, args.batch) for _ in range(args.runs)]
    figures, per_task, tasks = [r[0] for r in runs], [r[1] for r in runs], runs[0][2]
    print(f"worker batch path without the network, {args.events:,} events in batches of "
          f"{args.batch}: {statistics.median(figures):.1f} µs an event (median; runs "
          f"{', '.join(f'{f:.1f}' for f in figures)}), "
          f"{1e6 / statistics.median(figures):,.0f} events/s on one core")  # fmt: skip
    print(f"case tracking of the {tasks:,} agency tasks they sent: "
          f"{statistics.median(per_task):.1f} µs a task (median; runs "
          f"{', '.join(f'{f:.1f}' for f in per_task)}), "
          f"{statistics.median(per_task) * tasks / args.events:.1f} µs a source event")  # fmt: skip


if __name__ == "__main__":
    main()
