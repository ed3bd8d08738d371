"""`python -m hub.bench.batch`: the worker's batch path without the network stores what it
processed, and the case tracking after it tracks every task the batches sent (a figure from a
path that dropped the work would mean nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.bench import batch as bench_batch
from hub.store.sql import open_store
from hub.wire.codec import Codec


def test_the_batch_bench_stores_every_accepted_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_batch.tempfile, "mkdtemp", lambda prefix="": str(tmp_path))
    codec = Codec()
    messages, people = bench_batch.messages(codec, 400)
    per_event_us, per_task_us, tasks = bench_batch.run_once(codec, messages, people, 100)
    assert per_event_us > 0 and per_task_us > 0
    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:
        stored = store.query("SELECT count(*) FROM events")[0][0]
        letters = store.query("SELECT count(*) FROM dead_letters")[0][0]
        steps = store.query("SELECT count(*) FROM case_steps")[0][0]
    finally:
        store.close()
    assert stored > 300 and stored + letters == len(messages)
    # Every task opened its step of a case, and the cases reached the store.
    assert tasks > 20 and steps == tasks
