"""Indicators that are true for the whole hub (issue 14): two workers and a restart during a run
of simulated dossiers; `hub kpi --json` and the exporter equal what the generated lifecycles
say, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub.domain.indicators import Period
from hub.ops.kpi import KpiCollector
from hub.settings import Settings
from hub.sim.simulator import produce
from hub.store.sql import open_store
from hub.wire.codec import Codec
from tests.conftest import new_pg_schema
from tests.integration.workers import REPO, WorkerProcess, traffic_for_new_group
from tests.unit.test_indicators import expected_from_plans

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared-store.sqlite3'}"
    return new_pg_schema(request.getfixturevalue("postgres_url"), "kpi")


def history_rows(url: str) -> int:
    store = open_store(url)
    try:
        return int(store.query("SELECT count(*) FROM dossier_history")[0][0])
    finally:
        store.close()


async def test_two_workers_and_a_restart_agree_with_the_generated_lifecycles(
    kafka_broker: Settings, tmp_path: Path, store_url: str
) -> None:
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "kpi", codec, 3, 300)
    plans = [traffic.new_dossier() for _ in range(400)]
    as_of = traffic.now  # every step sent happened by then
    events = [e for plan in plans for e in traffic.dossier_events(plan)]
    assert any(e.status.value == "SUPPLEMENT_REQUESTED" for e in events)

    env = {"HUB_STORE_URL": store_url, "HUB_STORE_BATCH_SIZE": "100"}
    first, second = (WorkerProcess(tmp_path / f"w{i}", group, env) for i in (1, 2))
    first.start()
    second.start()
    try:
        await produce(bootstrap, (traffic.message(e) for e in events[: len(events) // 2]))
        first.kill()  # mid-run: SIGKILL, no final commit
        await produce(bootstrap, (traffic.message(e) for e in events[len(events) // 2 :]))
        first.start()
        deadline = time.monotonic() + 180
        while history_rows(store_url) < len(events) and time.monotonic() < deadline:
            time.sleep(1)
        assert history_rows(store_url) == len(events), "every status change stored once"
    finally:
        first.stop()
        second.stop()

    for text in (Period.current_month(as_of).label, str(as_of.year)):
        period = Period.parse(text)
        expected = expected_from_plans(plans, period, as_of)
        done = subprocess.run(
            [sys.executable, "-m", "hub", "kpi", "--period", text, "--as-of",
             as_of.strftime("%Y-%m-%dT%H:%M:%S%z"), "--json"],
            cwd=REPO, env={"PATH": "/usr/bin:/bin", "HUB_STORE_URL": store_url,
                           "HUB_HOME": str(tmp_path)},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        report: dict[str, Any] = json.loads(done.stdout)
        for province, c in expected.items():
            got = report["by_province"].get(province, {})
            online = sum(n for ch, n in got.get("received_by_channel", {}).items()
                         if ch.startswith("ONLINE"))  # fmt: skip
            assert (got.get("received", 0), online, got.get("resolved", 0),
                    got.get("resolved_on_time", 0), got.get("overdue_now", 0)) == (
                c["received"], c["online"], c["resolved"], c["on_time"], c["overdue"],
            ), (text, province)  # fmt: skip

    # The exporter's gauges are the same figures (current month, per province).
    registry = CollectorRegistry()
    registry.register(KpiCollector(store_url, lambda: as_of))
    samples = {(s.name, s.labels["province"], s.labels["period"]): s.value
               for f in text_string_to_metric_families(generate_latest(registry).decode())
               for s in f.samples if "province" in s.labels}  # fmt: skip
    month = expected_from_plans(plans, Period.current_month(as_of), as_of)
    for province, c in month.items():
        assert samples.get(("hub_kpi_dossiers_received", province, "month"), 0) == c["received"]
        assert samples.get(("hub_kpi_dossiers_overdue_now", province, "month"), 0) == c["overdue"]
