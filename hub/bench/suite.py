"""`hub bench`'s contenders, measured side by side in one run (docs/BENCHMARKS.md).

(a) Kafka's perf tools, (b) a bare aiokafka pass-through, (c) the hub worker (one process and
two in one group), (d) the same pipeline in Quix Streams, (e) a naive faust agent, (f) a faust
agent that only counts, on faust's path and on the worker's hubkafka:// transport; then (c)'s
occurred → stored latency at a fixed offered rate, one worker and two.
"""

from __future__ import annotations

from collections.abc import Callable

from hub.bench.runner import Bench, Figures, Preload

Contender = Callable[[Bench, Preload], Figures]

CONTENDERS: list[tuple[str, Contender]] = [
    ("kafka_perf", lambda b, p: b.kafka_perf(p)),
    ("aiokafka_passthrough", lambda b, p: b.passthrough(p)),
    ("hub", lambda b, p: b.workers(p, "hub", ["hub", "worker"])),
    ("hub_2_workers", lambda b, p: b.workers(p, "hub2", ["hub", "worker"], count=2)),
    ("quixstreams", lambda b, p: b.workers(p, "quix", ["hub.bench.quix"])),
    ("faust_naive", lambda b, p: b.workers(p, "naive", ["hub.bench.naive", "worker"])),
    ("faust_ceiling", lambda b, p: b.faust_ceiling(p)),
    ("faust_ceiling_chunks", lambda b, p: b.faust_ceiling(p, chunks=True)),
]
# The contenders whose latency is measured, and with how many workers.
LATENCY = (("hub", 1), ("hub_2_workers", 2))
# --quick: events, runs, cap (s), offered rate (events/s), latency seconds.
QUICK = (3000, 1, 60.0, 500.0, 5.0)


def run(b: Bench, rate: float, latency_seconds: float) -> dict[str, Figures]:
    """Pre-load the events, measure every contender in turn, then the latencies."""
    preload = b.preload()
    results: dict[str, Figures] = {}
    for name, contender in CONTENDERS:
        b.say(f"measuring {name}…")
        results[name] = contender(b, preload)
    for name, workers in LATENCY:
        b.say(f"measuring {name} latency at {rate:.0f} events/s for {latency_seconds:.0f} s…")
        lat = b.latency(rate, latency_seconds, workers)
        results[name].extra.update(lat.extra, latency_worker_rss_mb=round(lat.peak_rss_mb or 0))
    return results


def command_line(events: int, runs: int, cap: float, rate: float, latency_seconds: float,
                 quick: bool) -> str:  # fmt: skip
    """The command that reproduces a run, as the results record it."""
    if quick:
        return "hub bench --quick"
    return (f"hub bench --events {events} --runs {runs} --cap {cap:g} --rate {rate:g} "
            f"--latency-seconds {latency_seconds:g}")  # fmt: skip
