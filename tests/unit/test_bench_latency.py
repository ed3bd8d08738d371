"""The bench's latency figure: occurred → stored from the store's own timestamps, of the events
that occurred during the run only (hub/bench/runner.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.bench.runner import live_latencies, percentile


def test_backdated_events_are_counted_apart_and_the_rest_measured(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (occurred_at TEXT, stored_at TEXT)")
    rows = [(start + timedelta(seconds=i), start + timedelta(seconds=i, milliseconds=40 + i))
            for i in range(100)]  # fmt: skip
    rows.append((start - timedelta(days=3), start + timedelta(seconds=5)))  # a dossier's history
    conn.executemany("INSERT INTO events VALUES (?, ?)",
                     [(a.isoformat(), b.isoformat()) for a, b in rows])  # fmt: skip
    conn.commit()
    conn.close()
    live, backdated = live_latencies(path, start)
    assert backdated == 1
    assert len(live) == 100
    assert percentile(live, 0.5) == 0.089  # the 50th of 40..139 ms
    assert percentile(live, 0.99) == 0.138
    assert percentile([], 0.99) is None
