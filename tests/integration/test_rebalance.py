"""Workers joining and one killed mid-run (issue 15): the partitions move between workers twice
while 15,000 events flow, and every event the group acknowledged is stored exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from hub.settings import Settings
from hub.sim.simulator import produce
from hub.wire.codec import Codec
from tests.integration.workers import WorkerProcess, traffic_for_new_group, until

pytestmark = pytest.mark.integration


def stored(db: Path, wanted: list[str]) -> tuple[int, int]:
    """Rows of the ``wanted`` events in the shared store, and how many distinct ones."""
    if not db.exists():
        return 0, 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("CREATE TEMP TABLE want (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO want VALUES (?)", [(i,) for i in wanted])
        sql = (
            "SELECT count(*), count(DISTINCT event_id) FROM events "
            "JOIN want ON want.id = events.event_id"
        )
        rows, distinct = conn.execute(sql).fetchone()
        return int(rows), int(distinct)
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        conn.close()


async def test_workers_join_and_one_is_killed_yet_every_event_is_stored_once(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    codec = Codec()
    group, traffic = await traffic_for_new_group(kafka_broker.kafka_bootstrap, "rebalance",
                                                 codec, 4, 600)  # fmt: skip
    db = tmp_path / "shared.sqlite3"
    env = {"HUB_STORE_URL": f"sqlite:///{db}", "HUB_STORE_BATCH_SIZE": "200"}
    workers = [WorkerProcess(tmp_path / f"w{i}", group, env) for i in range(3)]
    # Sent live at 500/s (30 s), not pre-loaded: the workers join and die while events still
    # flow however fast they are (pre-loaded, a fast worker had stored all before the third
    # one had started).
    messages = list(traffic.stream(15_000))
    valid = [str(m.event_id) for m in messages if m.event_id and not m.poison]
    sending = asyncio.create_task(produce(kafka_broker.kafka_bootstrap, messages, rate=500))

    async def stored_share(share: float, limit: float = 180) -> int:
        _, distinct = await until(lambda: stored(db, valid), lambda s: s[1] >= share * len(valid),
                                  limit, every=0.2)  # fmt: skip
        return distinct

    moments = []
    try:
        await asyncio.to_thread(workers[0].start)
        moments.append(await stored_share(0.15))
        await asyncio.to_thread(workers[1].start)  # joins: the group rebalances
        moments.append(await stored_share(0.35))
        await asyncio.to_thread(workers[2].start)  # joins again
        moments.append(await stored_share(0.55))
        workers[1].kill()  # mid-batch, no goodbye: its partitions move after the session ends
        gone = [w for w in (workers[0], workers[2]) if not w.alive()]
        assert not gone, "a surviving worker stopped:\n" + "\n".join(w.tail() for w in gone)
        report = await sending
        assert sorted(map(str, report.valid_event_ids)) == sorted(valid)
        await stored_share(1.0, limit=300)
    finally:
        sending.cancel()
        for w in workers:
            w.stop()
    rows, distinct = stored(db, valid)
    assert moments == sorted(moments) and moments[-1] < len(valid), f"changes at {moments}"
    assert distinct == len(valid), f"{len(valid) - distinct} acknowledged events never stored"
    assert rows == distinct, f"{rows - distinct} events stored twice"
