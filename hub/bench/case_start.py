"""Start-up over a large case table (issue 15): how fast a worker is ready, and how much
memory it holds, over the changelog of N interconnection cases of which a share is open —
as a worker before the sixth round left it (every case kept), as case eviction leaves it
(closed cases tombstoned, before Kafka's log cleaner drops them) and after the cleaner.

    python -m hub.bench.case_start --cases 200000 [--open-share 0.05] [--json]

Each layout gets an app id (so a changelog, a consumer group and a store) of its own and an
empty register topic; the changelog is written as faust writes it (the case id as key, the
state in faust's ``json`` codec, a tombstone when a case leaves the table). The worker is the
real ``hub worker``: ready when /metrics says ``hub_worker_ready 1`` and
``hub_register_ready 1``; peak RSS is the process's VmHWM at that moment. Closed cases still in
the table (the first layout) are moved to the store after the start (once): not part of
"ready".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.serializers import codecs

from hub.bench.cases import case, open_every
from hub.bench.register import start_worker
from hub.domain.topics import TopicSpec
from hub.kafka.admin import create_topics, delete_topics
from hub.kafka.client import Connectable, connection, options
from hub.settings import load_settings

LAYOUTS = {
    "kept": "every case kept (before case eviction)",
    "tombstoned": "closed cases tombstoned (eviction, before the log cleaner)",
    "cleaned": "open cases only (eviction, after the log cleaner)",
}


def changelog(cases: int, open_share: float, layout: str) -> Iterator[tuple[bytes, bytes | None]]:
    """The case table's changelog records (key, value; None: a tombstone) in ``layout``."""
    now = datetime.now(UTC)
    every = open_every(cases, open_share)
    for i in range(cases):
        closed = i % every != 0
        if closed and layout == "cleaned":
            continue
        case_id = str(uuid.UUID(int=i + 1))
        key = case_id.encode()
        yield key, codecs.dumps("json", case(i, closed, now) | {"case_id": case_id})
        if closed and layout == "tombstoned":
            yield key, None


async def write(kafka: Connectable, topic: str, records: Iterator[tuple[bytes, bytes | None]]
                ) -> int:  # fmt: skip
    """Send ``records`` to ``topic`` (Kafka's default partitioner, as faust's table uses)."""
    producer = AIOKafkaProducer(**options(kafka), linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def measure(cases: int, open_share: float, layout: str, timeout: float) -> dict[str, Any]:
    settings = load_settings()
    kafka = connection(settings)
    app_id = f"bench-cases-{uuid.uuid4().hex[:8]}"
    table_topic = f"{app_id}-cases-changelog"
    register_topic = f"bench.register.{app_id}"
    specs = [TopicSpec(t, settings.partitions, {"cleanup.policy": "compact"})
             for t in (table_topic, register_topic)]  # fmt: skip
    asyncio.run(create_topics(kafka, specs, settings.replication_factor))
    try:
        records = asyncio.run(write(kafka, table_topic, changelog(cases, open_share, layout)))
        home = Path(tempfile.mkdtemp(prefix="hub-bench-cases-"))
        env = {"HUB_APP_ID": app_id, "HUB_POPULATION_TOPIC": register_topic}
        # Peak RSS read at ready: the source topics' backlog (a shared local broker) is not
        # what this measures.
        started = start_worker(home, env, timeout, settle_s=0)
    finally:
        asyncio.run(delete_topics(kafka, [s.name for s in specs]))
    return {"layout": layout, "cases": cases,
            "open": len(range(0, cases, open_every(cases, open_share))),
            "changelog_records": records, **started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=200_000, help="cases ever opened")
    parser.add_argument("--open-share", type=float, default=0.05, help="share still open")
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per worker start")
    parser.add_argument("--json", action="store_true", help="JSON output only")
    args = parser.parse_args()
    results = [measure(args.cases, args.open_share, layout, args.timeout)
               for layout in args.layouts]  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.cases:,} cases, {args.open_share:.0%} open")
    print("| changelog | records | ready | peak RSS |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {LAYOUTS[r['layout']]} | {r['changelog_records']:,} | {r['ready_s']} s | "
              f"{r['peak_rss_mb']} MB |")  # fmt: skip


if __name__ == "__main__":
    main()
