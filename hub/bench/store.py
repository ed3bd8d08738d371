"""The central store's write as its tables grow: microseconds an event for each slice of events
written (``batch_from`` + ``Store.write``, batches like the worker's), the store as the hub
opens it beside the same store with SQLite's default WAL checkpoint, in the same run.

Run: ``python -m hub.bench.store [--events 200000] [--slice 20000] [--url postgresql://…]``
(SQLite in a temporary directory unless ``--url``; docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from hub.bench.codec import _simulated
from hub.store.sql import Batch, Store, batch_from, open_store
from hub.stream.pipeline import Accepted
from hub.wire.codec import Codec

SQLITE_DEFAULT = ("SQLite's default checkpoint", ["PRAGMA wal_autocheckpoint=1000"])


def accepted_rows(count: int) -> list[tuple[Any, Any]]:
    """(envelope, event) of ``count`` events of the simulator's mix, as the worker stores them."""
    codec = Codec()
    messages, register, pipeline = _simulated(codec, count)
    now = datetime.now(UTC)
    rows = []
    for msg in messages:
        out = pipeline.process(msg, register.get, lambda _: None, now)
        if isinstance(out, Accepted):
            rows.append((out.envelope, out.event))
    return rows


def renamed(batch: Batch, round_: int) -> Batch:
    """The same rows under new event ids: the tables grow as with new traffic."""
    suffix = f"-{round_}"
    events = [(r[0] + suffix, *r[1:]) for r in batch.events]
    history = [(r[0] + suffix, *r[1:]) for r in batch.dossier_history]
    return Batch(events, batch.citizens, batch.deaths, batch.dossiers, history)


def slices(store: Store, batches: list[Batch], per_slice: int, rounds: int) -> list[float]:
    """µs an event of each round of ``batches`` (``per_slice`` events), the tables growing."""
    figures = []
    for round_ in range(rounds):
        began = time.perf_counter()
        for batch in batches:
            store.write(renamed(batch, round_))
        figures.append((time.perf_counter() - began) * 1e6 / per_slice)
    return figures


def run(events: int, per_slice: int, batch_size: int, url: str | None) -> dict[str, list[float]]:
    rows = accepted_rows(per_slice)
    now = datetime.now(UTC)
    batches = [batch_from(rows[i : i + batch_size], now) for i in range(0, len(rows), batch_size)]
    rounds = max(1, events // len(rows))
    results = {}
    variants: list[tuple[str, list[str]]] = [("as the hub opens it", [])]
    if not url:
        variants.append(SQLITE_DEFAULT)
    for label, pragmas in variants:
        store_url = url or f"sqlite:///{tempfile.mkdtemp(prefix='hub-store-')}/store.sqlite3"
        store = open_store(store_url)
        try:
            for pragma in pragmas:
                store.query(pragma)
            results[label] = slices(store, batches, len(rows), rounds)
        finally:
            store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events written in all")
    parser.add_argument("--slice", type=int, default=20_000, help="events a figure is over")
    parser.add_argument("--batch", type=int, default=500, help="events a transaction")
    parser.add_argument("--url", help="a store URL (default: SQLite in a temporary directory)")
    args = parser.parse_args()
    results = run(args.events, args.slice, args.batch, args.url)
    rounds = len(next(iter(results.values())))
    print("| store | " + " | ".join(f"≤{(i + 1) * args.slice // 1000}k" for i in range(rounds))
          + " |")  # fmt: skip
    print("|---|" + "---:|" * rounds)
    for label, figures in results.items():
        print(f"| {label} | " + " | ".join(f"{f:.0f}" for f in figures) + " |")
    print("(µs an event to write each slice of events, the tables growing)")


if __name__ == "__main__":
    main()
