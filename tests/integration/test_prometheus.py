"""A real Prometheus (Debian package) scrapes a worker processing simulated traffic, with the
shipped scrape config and rules."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import Settings
from hub.sim.simulator import produce
from hub.wire.codec import Codec
from tests.integration.workers import (
    REPO,
    WorkerProcess,
    free_port,
    traffic_for_new_group,
)

pytestmark = pytest.mark.integration
PROM = REPO / "deploy" / "prometheus"


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def start_prometheus(tmp: Path, worker_port: int,
                     kpi_port: int) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus missing: apt-get install prometheus")  # fails in CI
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = [str(PROM / "rules" / "hub.rules.yml")]
    targets = {"hub-worker": worker_port, "hub-kpi": kpi_port}
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job.pop("dns_sd_configs", None)
            job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
    config["scrape_configs"] = [j for j in config["scrape_configs"]
                                if j["job_name"] in targets]  # fmt: skip
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(tmp / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise TimeoutError((tmp / "prometheus.log").read_text()[-2000:])


async def test_prometheus_scrapes_throughput_quality_and_kpis(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "prom", Codec(), 3, 500)
    worker = WorkerProcess(tmp_path / "w", group)
    worker.start()
    kpi_port = free_port()
    kpi = subprocess.Popen(
        [sys.executable, "-m", "hub", "kpi", "serve", "--port", str(kpi_port)], cwd=REPO,
        env={**worker.env, "HUB_STORE_URL": f"sqlite:///{worker.store_path}"},
        stdout=(tmp_path / "kpi.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    prom, port = start_prometheus(tmp_path, worker.port, kpi_port)
    try:
        await produce(bootstrap, traffic.stream(3000), rate=200)  # ~15 s of live traffic
        deadline = time.monotonic() + 60
        rate: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rate = query(port, "sum(rate(hub_events_in_total[15s]))")
            scrapes = query(port, 'count_over_time(up{job="hub-worker"}[1m])')
            if (
                rate
                and float(rate[0]["value"][1]) > 0
                and scrapes
                and float(scrapes[0]["value"][1]) >= 2
            ):
                break
            await asyncio.sleep(1)
        assert rate and float(rate[0]["value"][1]) > 0, "events/s seen by Prometheus"
        provinces = "|".join(traffic.province_codes)
        quality = query(port, f'hub_quality_events_total{{province=~"{provinces}"}}')
        assert {r["metric"]["province"] for r in quality} == set(traffic.province_codes)
        assert {r["metric"]["dimension"] for r in quality} == {
            "correct", "sufficient", "clean", "alive", "unified", "shared",
        }  # fmt: skip
        # Hub-wide indicators come from the one KPI exporter, read from the central store.
        figures: list[dict[str, Any]] = []
        for _ in range(30):
            figures = query(port, f'hub_kpi_dossiers_received{{period="year", '
                                  f'province=~"{provinces}"}}')  # fmt: skip
            if {r["metric"]["province"] for r in figures} == set(traffic.province_codes):
                break
            await asyncio.sleep(1)
        assert {r["metric"]["province"] for r in figures} == set(traffic.province_codes)
        assert query(port, 'ALERTS{alertname="HubWorkerDown"}') == []
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        kpi.terminate()
        kpi.wait(timeout=30)
        worker.stop()
