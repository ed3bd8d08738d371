"""Simulated agencies for the demo: read agency tasks, acknowledge most of them after a delay.

Real agencies acknowledge on ``agency.ack.v1`` through their own systems; this stands in for
them so the demo shows cases closing (and a few staying open until they are overdue).
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.domain.records import AckOutcome, AgencyAcknowledgement, AgencyTask
from hub.domain.topics import TASK_TOPICS, ack_topic_of
from hub.kafka.client import Connectable, options
from hub.wire.codec import Codec, CodecError

# What simulated agencies answer besides DONE (shares for the demo, not statistics).
REFUSALS = [
    (AckOutcome.REJECTED, "Thông tin nơi thường trú không khớp", 0.02),
    (AckOutcome.NEEDS_SUPPLEMENT, "Cần bổ sung giấy tờ chứng minh chỗ ở", 0.03),
]


def acknowledgement(task: AgencyTask, now: datetime, outcome: AckOutcome = AckOutcome.DONE,
                    note: str | None = None) -> AgencyAcknowledgement:  # fmt: skip
    return AgencyAcknowledgement(
        case_id=task.case_id,
        task_id=task.task_id,
        agency=task.agency,
        outcome=outcome,
        acknowledged_at=now,
        reference=f"{task.agency.value[:3]}-{task.task_id[-6:]}",
        note=note,
    )


async def run_agencies(
    kafka: Connectable, group: str, ack_share: float, stop: asyncio.Event, seed: int = 1
) -> int:
    """Acknowledge about ``ack_share`` of the tasks until ``stop`` is set; return acks sent."""
    codec = Codec()
    rng = random.Random(seed)
    consumer = AIOKafkaConsumer(*TASK_TOPICS, **options(kafka), group_id=group,
                                auto_offset_reset="latest")  # fmt: skip
    producer = AIOKafkaProducer(**options(kafka), linger_ms=20)
    await consumer.start()
    await producer.start()
    sent = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batch.values():
                for r in records:
                    try:
                        task = AgencyTask.model_validate(codec.decode(r.value or b"")[1])
                    except (CodecError, ValueError):
                        continue
                    if rng.random() >= ack_share:
                        continue  # this agency is late: the case will go overdue
                    outcome, note, draw = AckOutcome.DONE, None, rng.random()
                    for refusal, why, share in REFUSALS:
                        if draw < share:
                            outcome, note = refusal, why
                            break
                        draw -= share
                    ack = acknowledgement(task, datetime.now(UTC), outcome, note)
                    value = codec.encode(AgencyAcknowledgement.SCHEMA, ack.to_avro())
                    await producer.send(ack_topic_of(task.agency.value), key=r.key, value=value)
                    sent += 1
    finally:
        await producer.stop()
        await consumer.stop()
    return sent
