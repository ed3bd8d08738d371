"""Latency of the worker at chosen offered rates, without the rest of the bench.

Run: ``python -m hub.bench.latency --rate 1000 --rate 2000 [--seconds 20] [--workers N]
[--postgres URL]`` beside the local broker. Each rate is measured as ``hub bench`` measures it
(hub/bench/runner.py ``Bench.latency``): a fresh worker (or ``--workers`` of them in one group and
one store), WARMUP_S of traffic at the rate, then ``--seconds`` of it whose events are measured
occurred → stored, from the store's own timestamps. The store is a fresh SQLite file, or with
``--postgres`` a fresh schema of that PostgreSQL database (dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import sys

from hub.bench.runner import WARMUP_S, Bench
from hub.metrics import BATCH_STAGES
from hub.settings import load_settings
from hub.store.sql import StoreError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--rate", type=float, action="append",
        help="offered events/s (repeat for several; default 1000 and 2000)",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds a rate")
    parser.add_argument(
        "--cap", type=float, default=120.0,
        help="seconds after the first stored event to wait for the rest",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=1,
        help="worker processes in one group sharing the partitions (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--postgres", metavar="URL",
        help="store in a fresh schema of this PostgreSQL database (default: an SQLite file)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bench = Bench(load_settings(), 0, 1, args.cap, lambda text: print(text, file=sys.stderr))
    rows = []
    try:
        bench.register_topic()
        for rate in args.rate or [1000.0, 2000.0]:
            rows.append(bench.latency(rate, args.seconds, args.workers, args.postgres).extra)
    except StoreError as exc:  # a --postgres database it cannot use: say so, no traceback
        raise SystemExit(f"hub.bench.latency: {exc}") from None
    finally:
        bench.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    workers = "one worker" if args.workers == 1 else f"{args.workers} workers in one group"
    store = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{workers}, a {store} store, {WARMUP_S:g} s of warm-up, then {args.seconds:g} s "
          "measured a rate")  # fmt: skip
    print("| offered (events/s) | p50 ms | p99 ms | of it before the batch began: p50, p99 | "
          "events measured | not stored | "
          f"ms a batch: {', '.join(BATCH_STAGES)} | producer CPU µs an event |")  # fmt: skip
    print("|---:|---:|---:|---|---:|---:|---|---:|")
    for r in rows:
        stages = ", ".join(str(r.get(f"{stage}_ms_per_batch", "—")) for stage in BATCH_STAGES)
        print(f"| {r['offered_per_s']:,} | {r['latency_p50_ms']} | {r['latency_p99_ms']} | "
              f"{r['waited_p50_ms']}, {r['waited_p99_ms']} | "
              f"{r['latency_events']:,} | {r['latency_unstored_events']:,} | "
              f"{stages} | {r['producer_cpu_us_per_event']} |")  # fmt: skip


if __name__ == "__main__":
    main()
