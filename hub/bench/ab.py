"""Before/after in one run: the hub worker of another commit against this one, same events.

Run as ``python -m hub.bench.ab REF [--events N] [--runs R]`` beside the local broker. Checks
REF out into a temporary git worktree, pre-loads N events once, then alternates one run of
REF's worker and one run of this tree's worker, R times, each from the start of the pre-load
in a consumer group of its own; prints the medians and the ratio (docs/BENCHMARKS.md).
Both run with this environment's packages; CPU seconds include each worker's start-up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hub.bench.runner import Bench, Figures
from hub.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def compare(ref: str, events: int, runs: int, cap: float) -> dict[str, Figures]:
    tree = Path(tempfile.mkdtemp(prefix="hub-ab-")) / "tree"
    made = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref],
                          check=False, capture_output=True, text=True)  # fmt: skip
    if made.returncode != 0:
        raise SystemExit(f"cannot check out {ref}: {made.stderr.strip()}")
    bench = Bench(load_settings(), events, 1, cap, lambda text: print(text, file=sys.stderr))
    try:
        preload = bench.preload()
        runs_of: dict[str, list[Figures]] = {"before": [], "after": []}
        for i in range(runs):
            for label, cwd in (("before", tree), ("after", REPO)):
                bench.say(f"run {i + 1}/{runs}: {label}")
                figures = bench.workers(preload, f"{label}{i}", ["hub", "worker"], cwd=cwd)
                runs_of[label].append(figures)
    finally:
        bench.close()
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                       check=False, capture_output=True)  # fmt: skip
    return {label: _median(figs) for label, figs in runs_of.items()}


def _median(figs: list[Figures]) -> Figures:
    rates = [f.events_per_s or 0.0 for f in figs]
    return Figures(statistics.median(rates),
                   statistics.median(f.cpu_s_per_1k or 0.0 for f in figs),
                   max(f.peak_rss_mb or 0.0 for f in figs), rates)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("ref", help="the commit to compare this tree with")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cap", type=float, default=120.0)
    args = parser.parse_args()
    result = compare(args.ref, args.events, args.runs, args.cap)
    before, after = result["before"], result["after"]
    print(f"hub worker, {args.events} events, median of {args.runs} alternating runs")
    print("| tree | events/s | runs | CPU s / 1k events | peak RSS MB |")
    print("|---|---:|---|---:|---:|")
    for label, f in (("before: " + args.ref, before), ("after: this tree", after)):
        runs = ", ".join(f"{r:,.0f}" for r in f.runs)
        print(f"| {label} | {f.events_per_s or 0:,.0f} | {runs} | {f.cpu_s_per_1k or 0:.2f} | "
              f"{f.peak_rss_mb or 0:.0f} |")  # fmt: skip
    if before.events_per_s:
        print(f"\nafter / before: {(after.events_per_s or 0) / before.events_per_s:.2f}×")


if __name__ == "__main__":
    main()
