"""The central store's write as its tables grow: microseconds an event for each slice of events
written (``batch_from`` + ``Store.write``, batches like the worker's), the store as the hub
writes it beside, in the same run and slice by slice in turn, the same store with SQLite's
default WAL checkpoint and the same store given its times as datetimes for SQLite's adapter
(the worker before the sixteenth round; ``Store.stamp``).

Run: ``python -m hub.bench.store [--events 200000] [--slice 20000] [--url postgresql://…]``
(SQLite in a temporary directory unless ``--url``; docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hub.bench.codec import _simulated
from hub.domain.events import SourceEvent
from hub.domain.records import Envelope
from hub.store.sql import Store, batch_from, open_store, same
from hub.stream.pipeline import Accepted
from hub.wire.codec import Codec

Row = tuple[Envelope, SourceEvent]
# label, PRAGMAs run after opening, whether the store stamps its own times (Store.stamp)
Variant = tuple[str, list[str], bool]
HUB: Variant = ("as the hub writes it", [], True)
SQLITE_DEFAULT: Variant = ("SQLite's default checkpoint", ["PRAGMA wal_autocheckpoint=1000"], True)
ADAPTER: Variant = ("times through SQLite's datetime adapter", [], False)


def accepted_rows(count: int) -> list[Row]:
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


def renamed(rows: list[Row], round_: int) -> list[Row]:
    """The same events under new event ids: the tables grow as with new traffic."""
    suffix = f"-{round_}"
    return [(Envelope(**{**env, "event_id": env["event_id"] + suffix}), event)
            for env, event in rows]  # fmt: skip


def write_slice(store: Store, rows: list[Row], size: int,
                stamp: Callable[[datetime], Any]) -> float:  # fmt: skip
    """µs an event to write ``rows`` in batches of ``size`` (rows made and written)."""
    now = datetime.now(UTC)
    began = time.perf_counter()
    for i in range(0, len(rows), size):
        store.write(batch_from(rows[i : i + size], now, stamp))
    return (time.perf_counter() - began) * 1e6 / len(rows)


def run(events: int, per_slice: int, batch_size: int, url: str | None) -> dict[str, list[float]]:
    rows = accepted_rows(per_slice)
    rounds = max(1, events // len(rows))
    variants = [HUB] if url else [HUB, SQLITE_DEFAULT, ADAPTER]
    stores: dict[str, Store] = {}
    results: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    try:
        for label, pragmas, _ in variants:
            store_url = url or f"sqlite:///{tempfile.mkdtemp(prefix='hub-store-')}/store.sqlite3"
            stores[label] = store = open_store(store_url)
            for pragma in pragmas:
                store.query(pragma)
        for round_ in range(rounds):  # each slice written by every variant in turn
            fresh = renamed(rows, round_)
            for label, _, stamped in variants:
                store = stores[label]
                results[label].append(write_slice(store, fresh, batch_size,
                                                  store.stamp if stamped else same))  # fmt: skip
    finally:
        for store in stores.values():
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
