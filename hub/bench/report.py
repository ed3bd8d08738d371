"""`hub bench` output: the JSON object, a markdown table and a PNG chart."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from hub.bench.runner import Figures, as_json

LABELS = {
    "kafka_perf": "(a) Kafka perf tools (broker ceiling)",
    "aiokafka_passthrough": "(b) aiokafka pass-through (Python ceiling)",
    "hub": "(c) hub worker, full pipeline → store",
    "hub_2_workers": "(c) hub, 2 workers in one group",
    "quixstreams": "(d) Quix Streams, same pipeline",
    "faust_naive": "(e) naive faust agent, one event at a time",
    "faust_ceiling": "(f) faust agent that only counts (faust's ceiling)",
    "faust_ceiling_chunks": "(f) the same count on the worker's hubkafka:// transport",
}


def machine() -> str:
    import os

    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"  # fmt: skip


def markdown(results: dict[str, Figures]) -> str:
    base = results.get("aiokafka_passthrough")
    ceiling = base.events_per_s if base and base.events_per_s else None
    lines = [
        "| contender | events/s (median) | ratio to (b) | CPU s / 1k events | peak RSS MB | runs |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for key, label in LABELS.items():
        fig = results.get(key)
        if fig is None:
            continue
        rate = f"{fig.events_per_s:,.0f}" if fig.events_per_s else "—"
        ratio = f"{fig.events_per_s / ceiling:.2f}" if fig.events_per_s and ceiling else "—"
        cpu = f"{fig.cpu_s_per_1k:.2f}" if fig.cpu_s_per_1k is not None else "—"
        rss = f"{fig.peak_rss_mb:.0f}" if fig.peak_rss_mb else "—"
        runs = ", ".join(f"{r:,.0f}" for r in fig.runs) or fig.note or "—"
        lines.append(f"| {label} | {rate} | {ratio} | {cpu} | {rss} | {runs} |")
    for key in ("hub", "hub_2_workers"):
        fig = results.get(key)
        if fig is None or "latency_p99_ms" not in fig.extra:
            continue
        e = fig.extra
        lines.append("")
        lines.append(f"{LABELS[key]}: latency occurred → stored at {e.get('offered_per_s')} "
                     f"events/s offered: p50 {e.get('latency_p50_ms')} ms, p99 "
                     f"{e.get('latency_p99_ms')} ms, of it before the batch began p50 "
                     f"{e.get('waited_p50_ms')} ms (worker peak RSS "
                     f"{e.get('latency_worker_rss_mb')} MB).")  # fmt: skip
        if e.get("latency_unstored_events"):
            lines.append(f"{e['latency_unstored_events']} events were not stored within the "
                         "cap: the workers did not keep up with the offered rate.")  # fmt: skip
    notes = [f"- {LABELS[k]}: {f.note}" for k, f in results.items() if f.note and k in LABELS]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def chart(results: dict[str, Figures], path: Path) -> bool:
    """A bar chart of events/s per contender; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    keys = [k for k in LABELS if k in results and results[k].events_per_s]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.barh([LABELS[k] for k in keys], [results[k].events_per_s or 0 for k in keys],
            color="#2b6cb0")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("events per second (log scale, median of runs)")
    hub = results.get("hub")
    if hub and hub.extra.get("latency_p99_ms") is not None:
        ax.set_title(f"Throughput; hub p50/p99 occurred→stored "
                     f"{hub.extra['latency_p50_ms']}/{hub.extra['latency_p99_ms']} ms at "
                     f"{hub.extra['offered_per_s']} ev/s")  # fmt: skip
    ax.invert_yaxis()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def payload(results: dict[str, Figures], command: str, events: int, runs: int,
            seconds: float) -> dict[str, Any]:  # fmt: skip
    """The JSON object of a run: every contender's figures and how, where and with what."""
    from importlib.metadata import version

    from hub.kafka.local import kafka_version

    versions = {p: version(p) for p in ("faust-streaming", "aiokafka", "fastavro", "quixstreams")}
    versions["kafka"] = kafka_version() or "?"
    meta = {"command": command, "machine": machine(), "events": events, "runs": runs,
            "seconds": round(seconds), "versions": versions}  # fmt: skip
    return {**as_json(results), "meta": meta}


def write(out: Path, data: dict[str, Any], results: dict[str, Figures]) -> None:
    """results.json, results.md and throughput.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results) + "\n")
    chart(results, out / "throughput.png")
