"""The central store goes away during a run: the worker stops loudly after its retries instead of
going on without it, acknowledges nothing it did not store, and a worker started once the store
is back stores every event exactly once (real broker, real PostgreSQL, real `hub worker`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from hub.settings import Settings
from hub.sim.simulator import produce
from hub.wire.codec import Codec
from tests.conftest import new_pg_schema
from tests.integration.workers import WorkerProcess, pg_rows, traffic_for_new_group

pytestmark = pytest.mark.integration


def count(url: str, sql: str) -> int:
    import psycopg

    try:
        return int(str(pg_rows(url, sql)[0][0]))
    except psycopg.Error:
        return 0


def rename_schema(base: str, old: str, new: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA {old} RENAME TO {new}")


async def test_a_store_gone_for_good_stops_the_worker_and_loses_nothing(
    kafka_broker: Settings, tmp_path: Path, postgres_url: str
) -> None:
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "outage", codec, 3, 500)
    report = await produce(bootstrap, traffic.stream(15000, 0.0))
    valid = len(report.valid_event_ids)
    url = new_pg_schema(postgres_url, "outage")
    schema = unquote(url).split("search_path=")[1]
    env = {"HUB_STORE_URL": url, "HUB_STORE_BATCH_SIZE": "100"}

    first = WorkerProcess(tmp_path / "w1", group, env)
    first.start()
    try:
        deadline = time.monotonic() + 120
        while count(url, "SELECT count(*) FROM events") == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stored_before = count(url, "SELECT count(*) FROM events")
        assert 0 < stored_before < valid, "the outage starts mid-run"
        # The store's tables vanish from the worker's search path (as a dropped database or a
        # revoked grant would look to it): every query fails, reconnecting does not help.
        rename_schema(postgres_url, schema, f"{schema}_away")
        deadline = time.monotonic() + 120
        while first.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert not first.alive(), "the worker stops instead of going on without its store"
        log = first.log.read_text(errors="replace")
        assert "failed 5 times" in log and "the store failed for good" in log, log[-2000:]
        assert first.proc is not None and first.proc.returncode != 0, "a failure, not a stop"
    finally:
        first.kill()
        if count(
            postgres_url, f"SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}_away'"
        ):
            rename_schema(postgres_url, f"{schema}_away", schema)  # the store is back

    second = WorkerProcess(tmp_path / "w2", group, env)
    second.start()
    try:
        deadline = time.monotonic() + 180
        while count(url, "SELECT count(*) FROM events") < valid and time.monotonic() < deadline:
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # anything still to come would show now
    finally:
        second.stop()
    assert count(url, "SELECT count(*) FROM events") == valid, "nothing lost"
    assert count(url, "SELECT count(DISTINCT event_id) FROM events") == valid, "nothing twice"
