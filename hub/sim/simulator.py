"""`hub simulate`: produce the synthetic register and traffic to the real broker."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from hub.kafka.client import Connectable, options, start_client
from hub.sim.traffic import Message

Progress = Callable[[int], None]

# A paced producer sends every message that is due, then sleeps at least this long, and lets
# the client send them at once (no linger: the tick is the batch). A sleep per message (0.5 ms
# apart at 2,000/s) and record batches of one or two messages cost ~200 µs of CPU a message:
# the latency bench's producer took 0.4 of this machine's two cores from the worker it measures
# (docs/BENCHMARKS.md). A message may leave up to one tick after its moment, never before it.
PACE_TICK_S = 0.01


@dataclass
class SimulationReport:
    sent: int = 0
    register: int = 0
    per_topic: Counter[str] = field(default_factory=Counter)
    poison: Counter[str] = field(default_factory=Counter)
    valid_event_ids: list[str] = field(default_factory=list)
    poison_messages: list[Message] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the sending process's CPU while it sent (all its threads)


async def produce(
    kafka: Connectable,
    messages: Iterable[Message],
    rate: float | None = None,
    progress: Progress | None = None,
    report: SimulationReport | None = None,
    start_at: float | None = None,
) -> SimulationReport:
    """Send ``messages`` (at ``rate`` per second when given) and wait for every acknowledgement.
    With ``rate``, the i-th message (from 0) is sent at ``start + i / rate``, never before (and
    at most :data:`PACE_TICK_S` after); ``start_at`` (a ``time.monotonic()`` moment) is that
    start, else when the producer is connected."""
    report = report or SimulationReport()
    producer = await start_client(AIOKafkaProducer(
        **options(kafka), linger_ms=0 if rate else 10, max_batch_size=256 * 1024, acks="all",
        enable_idempotence=True,
    ))  # fmt: skip
    cpu = time.process_time()
    started = time.monotonic() if start_at is None else start_at
    pending: list[asyncio.Future[object]] = []
    try:
        for i, msg in enumerate(messages):
            if rate:  # the i-th message (from 0) goes at started + i / rate, never before
                ahead = i / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(max(ahead, PACE_TICK_S))
            pending.append(await producer.send(msg.topic, key=msg.key, value=msg.value))
            report.per_topic[msg.topic] += 1
            if msg.poison:
                report.poison[msg.poison] += 1
                report.poison_messages.append(msg)
            elif msg.event_id:
                report.valid_event_ids.append(msg.event_id)
            else:
                report.register += 1
            report.sent += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
            if progress and (i + 1) % 500 == 0:
                progress(500)
        await asyncio.gather(*pending)
        if progress:
            progress(report.sent % 500)
    finally:
        await producer.stop()
    report.seconds = time.monotonic() - started
    report.cpu_seconds = time.process_time() - cpu
    return report
