"""A worker's memory over a large backlog, by how much a fetch brings of each partition.

Run: ``python -m hub.bench.backlog [--events N] [--fetch-bytes B …] [--seconds S] [--runs R]``
beside the local broker. Pre-loads N events of the bench's mix once, then starts a real ``hub
worker`` from the start of the pre-load for each ``HUB_FETCH_PARTITION_BYTES`` value in turn
(each in a consumer group of its own, alternating, R times), lets it drain until the whole
backlog is stored or S seconds after its first stored event, and reads its events/s, its peak
RSS (VmHWM) and its open interconnection cases at the stop.

The Kafka client fetches every partition the worker reads and holds up to that many bytes of each
until the worker takes them, so a worker restarted over a backlog (after an outage, or a new
deployment reading from the start) holds the fetch size times the partitions with records.
The backlog must exceed the fetch size on every partition for the bound to show: ~1,000,000
events of the mix (~150 bytes each) over 8 source topics of 12 partitions. Over a whole drain
the peak follows the open cases instead (docs/BENCHMARKS.md, fourteenth round): the worker's
own agency tasks open them, and nothing answers them here; when the worker takes those tasks
depends on the fetch size.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from hub.bench.runner import Bench, Figures
from hub.settings import load_settings

DEFAULT_SIZES = [1024**2, 256 * 1024]
# The worker's open interconnection cases (held in its memory until the agencies answer; none
# answer here), read as it stops: the cases its own agency tasks opened so far.
OPEN_CASES = "hub_interconnection_cases_open"


def run(events: int, sizes: list[int], seconds: float, runs: int) -> dict[int, list[Figures]]:
    """Figures of each fetch size, one a run, the sizes alternating within each run."""
    bench = Bench(load_settings(), events, 1, seconds, lambda text: print(text, file=sys.stderr))
    results: dict[int, list[Figures]] = {size: [] for size in sizes}
    try:
        preload = bench.preload()
        for i in range(runs):
            for size in sizes:
                bench.say(f"run {i + 1}/{runs}: {size:,} bytes a partition")
                results[size].append(bench.workers(
                    preload, f"backlog{size}-{i}", ["hub", "worker"],
                    extra_env={"HUB_FETCH_PARTITION_BYTES": str(size)},
                    gauges=(OPEN_CASES,)))  # fmt: skip
    finally:
        bench.close()
    return results


def table(results: dict[int, list[Figures]], seconds: float) -> str:
    lines = ["| bytes a partition a fetch | events/s (runs) | peak RSS MB (runs) | open cases "
             "at the stop (runs) | CPU s / 1k |", "|---:|---|---|---|---:|"]  # fmt: skip
    for size, figs in results.items():
        rates = ", ".join(f"{f.events_per_s or 0:,.0f}" for f in figs)
        rss = ", ".join(f"{f.peak_rss_mb or 0:.0f}" for f in figs)
        cases = ", ".join(f"{n:,.0f}" for f in figs for n in f.extra.get(OPEN_CASES, []))
        cpu = statistics.median(f.cpu_s_per_1k or 0.0 for f in figs)
        lines.append(f"| {size:,} | {rates} | {rss} | {cases} | {cpu:.2f} |")
    return (
        f"a worker over the backlog, until all of it is stored or {seconds:.0f} s after its "
        "first stored event\n" + "\n".join(lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events pre-loaded")
    parser.add_argument("--fetch-bytes", type=int, nargs="+", default=DEFAULT_SIZES,
                        help="HUB_FETCH_PARTITION_BYTES values compared")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=40.0,
                        help="most seconds a worker drains after its first stored row")  # fmt: skip
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    results = run(args.events, args.fetch_bytes, args.seconds, args.runs)
    print(table(results, args.seconds))


if __name__ == "__main__":
    main()
