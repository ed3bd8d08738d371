"""Quality over every event that arrived (issue 14): a source sending 30% invalid events shows
"correct" at 70% for that source; the dead letters are scored, not ignored."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.domain.topics import SourceTopic
from hub.settings import Settings
from hub.sim.simulator import produce
from hub.wire.codec import Codec
from tests.integration.workers import REPO, WorkerProcess, traffic_for_new_group

pytestmark = pytest.mark.integration


def correct_counts(metrics: str) -> tuple[float, float]:
    ok = bad = 0.0
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            if s.name != "hub_quality_events_total" or s.labels.get("dimension") != "correct":
                continue
            if s.labels.get("source") != "civil.birth":
                continue
            if s.labels["ok"] == "true":
                ok += s.value
            else:
                bad += s.value
    return ok, bad


async def test_a_source_with_30_percent_invalid_events_is_70_percent_correct(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "quality", Codec(), 2, 300)
    messages = [traffic.message(traffic.event(SourceTopic.BIRTH)) for _ in range(700)]
    messages += [traffic.poison("invalid_personal_id") for _ in range(300)]
    traffic.rng.shuffle(messages)
    await produce(bootstrap, messages)
    worker = WorkerProcess(tmp_path / "w", group, {"HUB_DLQ_MAX_RATIO": "0.9"})
    worker.start()
    try:
        ok = bad = 0.0
        for _ in range(120):
            ok, bad = correct_counts(worker.metrics_text() or "")
            if ok + bad >= 1000:
                break
            await asyncio.sleep(1)
    finally:
        worker.stop()
    assert (ok, bad) == (700, 300), "births assert no identity: every valid one is correct"
    assert ok / (ok + bad) == pytest.approx(0.7)

    # The same from the central store, for the whole hub: `hub quality`.
    done = subprocess.run(
        [sys.executable, "-m", "hub", "quality", "--json"], cwd=REPO, check=True, text=True,
        capture_output=True, env={"PATH": "/usr/bin:/bin", "HUB_HOME": str(worker.home),
                                  "HUB_STORE_URL": f"sqlite:///{worker.store_path}"},
    )  # fmt: skip
    report = json.loads(done.stdout)
    births = [g for g in report["by_source_and_province"] if g["source"] == "civil.birth"]
    assert sum(g["events"] for g in births) == 1000
    assert sum(g["dead_letters"] for g in births) == 300
    correct = sum(g["dimensions"]["correct"] * g["events"] for g in births)
    assert correct == pytest.approx(700)
    assert report["dead_letters_by_reason"] == {"invalid_personal_id": 300}
