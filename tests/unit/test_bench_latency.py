"""The bench's latency figure: occurred → stored from the store's own timestamps, of the events
that occurred during the run only (hub/bench/runner.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.bench.runner import live_latencies, percentile, stage_means_ms
from hub.bench.stores import BenchStore
from hub.domain.topics import SourceTopic
from hub.ops.scrape import parse
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec


def test_backdated_events_are_counted_apart_and_the_rest_measured(tmp_path: Path) -> None:
    store = BenchStore(tmp_path)
    assert store.count() == 0, "no table yet: nothing stored"
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    conn = sqlite3.connect(store.path)
    conn.execute("CREATE TABLE events (occurred_at TEXT, ingested_at TEXT, stored_at TEXT)")
    rows = [(start + timedelta(seconds=i), start + timedelta(seconds=i, milliseconds=10 + i),
             start + timedelta(seconds=i, milliseconds=40 + i)) for i in range(100)]  # fmt: skip
    rows.append((start - timedelta(days=3), start, start + timedelta(seconds=5)))  # a history
    conn.executemany("INSERT INTO events VALUES (?, ?, ?)",
                     [tuple(t.isoformat() for t in row) for row in rows])  # fmt: skip
    conn.commit()
    conn.close()
    assert store.count() == 101 and store.url == f"sqlite:///{store.path}"
    live = live_latencies(store.times(), start)
    assert live.backdated == 1
    assert len(live.stored) == len(live.waited) == 100
    assert percentile(live.stored, 0.5) == 0.089  # the 50th of 40..139 ms
    assert percentile(live.stored, 0.99) == 0.138
    assert percentile(live.waited, 0.5) == 0.059, "occurred → ingested: the 50th of 10..109 ms"
    assert percentile([], 0.99) is None


def test_a_scheduled_window_occurs_at_its_send_times_and_never_after() -> None:
    """The latency bench encodes its traffic ahead: the i-th event occurs at begin + i / rate
    (to the millisecond, never later, so the producer never sends an event from the future);
    dossier histories keep their older steps."""
    codec = Codec()
    traffic = Traffic(codec, seed=3, provinces=2, population=200, stale_share=0)
    begin, rate = datetime(2026, 11, 28, 8, 0, tzinfo=UTC), 2000.0
    messages = list(traffic.scheduled(400, rate, begin))
    for i, msg in enumerate(messages):
        at = codec.decode(msg.value)[1]["occurred_at"]
        slot = begin + timedelta(seconds=i / rate)
        assert at <= slot, f"event {i} occurs after it is sent"
        if msg.topic != SourceTopic.DOSSIER.value:
            assert slot - at < timedelta(milliseconds=1), f"event {i} occurs in its slot"
    assert any(m.topic == SourceTopic.DOSSIER.value for m in messages)
    assert traffic.fixed_now is None, "the generator's clock is live again afterwards"


def test_the_stage_means_are_read_from_the_workers_histogram() -> None:
    text = "\n".join([
        'hub_stage_duration_seconds_sum{stage="produce"} 1.5',
        'hub_stage_duration_seconds_count{stage="produce"} 100.0',
        'hub_stage_duration_seconds_sum{stage="store"} 3.0',
        'hub_stage_duration_seconds_count{stage="store"} 100.0',
        'hub_stage_duration_seconds_sum{stage="submit"} 12.0',
        'hub_stage_duration_seconds_count{stage="submit"} 100.0',
        'hub_stage_duration_seconds_sum{stage="cases"} 0.5',
        'hub_stage_duration_seconds_count{stage="cases"} 20.0',
        'hub_stage_duration_seconds_sum{stage="decode"} 9.0',
        'hub_stage_duration_seconds_count{stage="decode"} 0.0',
    ])  # fmt: skip
    assert stage_means_ms(parse(text)) == {"submit": 120.0, "produce": 15.0, "store": 30.0,
                                           "cases": 25.0}  # fmt: skip
    assert stage_means_ms(None) == {}


def test_the_stage_means_of_several_workers_weigh_every_batch_alike() -> None:
    """Two workers in one group: the mean over all their batches, not the mean of their means
    (a worker that ran 3 batches of 10 ms and one that ran 1 of 50 ms: 20 ms, not 30)."""
    one = parse('hub_stage_duration_seconds_sum{stage="submit"} 0.03\n'
                'hub_stage_duration_seconds_count{stage="submit"} 3.0')  # fmt: skip
    other = parse('hub_stage_duration_seconds_sum{stage="submit"} 0.05\n'
                  'hub_stage_duration_seconds_count{stage="submit"} 1.0')  # fmt: skip
    assert stage_means_ms(one, other) == {"submit": 20.0}
    assert stage_means_ms(one, None) == {"submit": 10.0}, "a worker that did not answer is left out"


def test_a_failed_measurement_leaves_no_worker_running() -> None:
    """What the bench runs when a measurement fails: every process not yet reaped is stopped,
    and one already stopped is not reaped twice (which would raise ChildProcessError)."""
    from hub.bench.runner import running, spawn, stop, stop_left

    done, left = spawn(["sleep", "60"]), spawn(["sleep", "60"])
    stop(done)
    stop_left([done, left])
    assert not running(left) and left.returncode is not None
