"""Contender (b): bare aiokafka consume → produce of the same bytes, the Python ceiling.

Run as ``python -m hub.bench.passthrough BOOTSTRAP GROUP COUNT``: reads COUNT messages from the
source topics (from the group's committed offsets) and produces each unchanged to
``bench.passthrough``; prints ``{"events": n, "seconds": s}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.domain.topics import SourceTopic
from hub.kafka.client import Connectable, connection, options
from hub.settings import load_settings

SINK = "bench.passthrough"


async def run(kafka: Connectable, group: str, count: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(*[t.value for t in SourceTopic], **options(kafka),
                                group_id=group, enable_auto_commit=False,
                                max_poll_records=2000)  # fmt: skip
    producer = AIOKafkaProducer(**options(kafka), linger_ms=5,
                                max_batch_size=256 * 1024)  # fmt: skip
    await consumer.start()
    await producer.start()
    seen = 0
    started = 0.0
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000)
            pending = []
            for records in batch.values():
                for r in records:
                    if not started:
                        started = time.perf_counter()
                    pending.append(await producer.send(SINK, key=r.key, value=r.value))
                    seen += 1
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return {"events": seen, "seconds": time.perf_counter() - started}


def main() -> None:
    group, count = sys.argv[1], int(sys.argv[2])
    kafka = connection(load_settings())  # the same HUB_KAFKA_* settings as the bench
    print(json.dumps(asyncio.run(run(kafka, group, count))))


if __name__ == "__main__":
    main()
