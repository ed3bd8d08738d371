"""Register benchmark (issue 15, item 3): how fast a worker is ready, and how much memory it
holds, over a register of N people — first start (the feed fills the store) and restart (it
reads only what was published since).

    python -m hub.bench.register 20000 1000000 [--json]

Each size gets its own register topic and store; the worker is the real `hub worker`, ready when
/metrics says hub_worker_ready 1 and hub_register_ready 1. Peak RSS is the process's VmHWM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.bench.runner import vm_hwm_kb
from hub.domain.records import PopulationRecord
from hub.domain.topics import POPULATION_TOPIC, TopicSpec
from hub.kafka.admin import create_topics, delete_topics
from hub.kafka.client import connection
from hub.ops.scrape import fetch
from hub.settings import load_settings
from hub.sim.simulator import produce
from hub.sim.traffic import Message, Traffic
from hub.wire.codec import Codec

REPO = Path(__file__).resolve().parents[2]


def people(count: int) -> Iterator[Message]:
    """``count`` distinct register records: a simulated population, serial numbers varied
    (the last six digits of a personal ID are a serial; the rest stays valid)."""
    codec = Codec()
    base = Traffic(codec, seed=99, provinces=5, population=2000, now=datetime.now(UTC)).people
    seen: set[str] = set()
    serial = 0
    while len(seen) < count:
        for person in base:
            pid = f"{person.personal_id[:6]}{serial % 1_000_000:06d}"
            if pid in seen:
                continue
            seen.add(pid)
            data = person.to_avro() | {"personal_id": pid}
            yield Message(POPULATION_TOPIC, pid.encode(),
                          codec.encode(PopulationRecord.SCHEMA, data), None)  # fmt: skip
            if len(seen) >= count:
                return
        serial += 1


def start_worker(home: Path, env: dict[str, str], timeout: float,
                 settle_s: float = 2.0) -> dict[str, float]:  # fmt: skip
    """Start `hub worker`, wait until ready; seconds to ready and peak RSS ``settle_s`` later,
    then stop it."""
    port = 9300 + os.getpid() % 500
    env = {**os.environ, **env, "HUB_HOME": str(home), "HUB_METRICS_PORT": str(port),
           "HUB_REPORT_INTERVAL_S": "0.5"}  # fmt: skip
    log = (home / "worker.log").open("ab")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "hub", "worker"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited: see {home / 'worker.log'}")
            scrape = fetch(f"http://127.0.0.1:{port}/metrics", timeout=2)
            if scrape is not None and scrape.total("hub_worker_ready") == 1 == scrape.total(
                "hub_register_ready"
            ):
                ready = time.monotonic() - started
                time.sleep(settle_s)
                peak = vm_hwm_kb(proc.pid) / 1024
                return {"ready_s": round(ready, 2), "peak_rss_mb": round(peak, 1)}
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready in {timeout:.0f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(count: int, timeout: float) -> dict[str, Any]:
    settings = load_settings()
    kafka = connection(settings)
    topic = f"bench.register.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(topic, settings.partitions, {"cleanup.policy": "compact"})
    asyncio.run(create_topics(kafka, [spec], settings.replication_factor))
    try:
        t0 = time.monotonic()
        msgs = (Message(topic, m.key, m.value, None) for m in people(count))
        asyncio.run(produce(kafka, msgs))
        produced_s = time.monotonic() - t0
        home = Path(tempfile.mkdtemp(prefix="hub-bench-register-"))
        env = {
            "HUB_POPULATION_TOPIC": topic,
            "HUB_APP_ID": f"bench-register-{uuid.uuid4().hex[:6]}",
        }
        first = start_worker(home, env, timeout)
        restart = start_worker(home, env, timeout)
    finally:
        asyncio.run(delete_topics(kafka, [topic]))
    return {"records": count, "produce_s": round(produced_s, 1), "first_start": first,
            "restart": restart}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="+", type=int, help="register sizes, e.g. 20000 1000000")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per worker start")
    parser.add_argument("--json", action="store_true", help="JSON output only")
    args = parser.parse_args()
    results = [measure(n, args.timeout) for n in args.sizes]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| register | first start: ready | peak RSS | restart: ready | peak RSS |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        f, s = r["first_start"], r["restart"]
        print(
            f"| {r['records']:,} | {f['ready_s']} s | {f['peak_rss_mb']} MB | "
            f"{s['ready_s']} s | {s['peak_rss_mb']} MB |"
        )


if __name__ == "__main__":
    main()
