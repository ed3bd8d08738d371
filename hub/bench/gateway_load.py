"""Load on the HTTP ingest gateway from loopback: events/s accepted and request latency.

``python -m hub.bench.gateway_load [--seconds S] [--batch N] [--concurrency C]`` starts
`hub gateway` on a free port with a throw-away API key (HUB_* settings as usual, a running
broker), posts pre-built batches of simulated birth registrations from C concurrent clients
for S seconds, and prints accepted events/s and the p50/p99 latency of the requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from connectors.ingest.credentials import Credentials
from hub.bench.runner import free_port, percentile
from hub.domain.topics import SourceTopic
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec


def batches(count: int, size: int) -> list[bytes]:
    traffic = Traffic(Codec(), seed=17, provinces=3, population=2000, now=datetime.now(UTC))
    events = [json.loads(traffic.event(SourceTopic.BIRTH).model_dump_json())
              for _ in range(count * size)]  # fmt: skip
    return [json.dumps(events[i : i + size]).encode() for i in range(0, len(events), size)]


async def load(url: str, key: str, bodies: list[bytes], seconds: float,
               concurrency: int) -> dict[str, float]:  # fmt: skip
    latencies: list[float] = []
    accepted = 0
    failed = 0
    queue = iter(bodies)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted, failed
        for body in queue:
            if time.monotonic() > deadline:
                return
            start = time.perf_counter()
            async with session.post(f"{url}/v1/events/civil.birth", data=body,
                                    headers=headers) as resp:  # fmt: skip
                answer = await resp.json()
            latencies.append(time.perf_counter() - start)
            if resp.status == 202:
                accepted += len(answer["accepted"])
            else:
                failed += 1

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {
        "events_per_s": accepted / elapsed,
        "requests": len(latencies),
        "failed_requests": failed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": (percentile(latencies, 0.99) or 0.0) * 1000,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        key = Credentials.load(keys).add(keys, "load", ["*"], ["*"])
        port = free_port()
        env = {**os.environ, "HUB_HOME": tmp, "HUB_GATEWAY_PORT": str(port),
               "HUB_GATEWAY_CREDENTIALS": str(keys), "HUB_GATEWAY_RATE": "0"}  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-m", "hub", "gateway"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(wait_ready(url))
            # Distinct events (the gateway produces an event id once): enough batches for the
            # run at up to ~120 requests/s; the run ends early if they run out ("seconds").
            bodies = batches(int(args.seconds * 120) + 50, args.batch)
            figures = asyncio.run(load(url, key, bodies, args.seconds, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps({"batch": args.batch, "concurrency": args.concurrency, **figures}))


async def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError(f"gateway at {url} not ready")


if __name__ == "__main__":
    main()
