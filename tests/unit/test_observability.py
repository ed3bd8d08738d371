"""Operators' side without a broker: the metrics exposition lints clean, the alert rules pass
their promtool unit tests, and every dashboard query names only metrics the hub exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub.metrics import HubMetrics

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "le", "inf", "nan",
}  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool missing: apt-get install prometheus")  # fails in CI (conftest)
    return path


def populated_exposition() -> str:
    """The hub's metrics with one child per labelled metric, as a worker serves them."""
    registry = CollectorRegistry()
    m = HubMetrics.create(registry)
    m.events_in.labels("src.civil.birth.v1").inc()
    m.events_out.labels("hub.civil_status.v1").inc()
    m.dead_letters.labels("dlq.src.civil.birth.v1", "bad_magic").inc()
    m.latency.observe(0.2)
    m.store_rows.inc()
    m.stage_seconds.labels("process").observe(0.001)
    m.consumer_lag.labels("src.civil.birth.v1", "0").set(3)
    m.quality.labels("alive", "civil.birth", "01", "true").inc()
    m.interconnection_skipped.labels("birth", "digitised").inc()
    m.notifications.labels("birth", "OPEN").inc()
    m.cases_open.labels("birth").set(1)
    m.cases_overdue.labels("birth").set(0)
    m.cases_waiting.set(0)
    m.tasks_open.labels("birth", "POLICE").set(1)
    m.tasks_overdue.labels("birth", "POLICE").set(0)
    m.identity_issues.labels("health.encounter", "subject_unknown").inc()
    return generate_latest(registry).decode()


def kpi_exposition(tmp: Path) -> str:
    """What `hub kpi serve` exports over a store holding one simulated dossier's history."""
    import random
    from datetime import UTC, datetime

    from hub.domain.indicators import HistoryRow
    from hub.ops.kpi import KpiCollector
    from hub.sim.dossiers import plan_dossier
    from hub.store.sql import open_store

    now = datetime.now(UTC)
    rng = random.Random(1)
    plans = (plan_dossier(rng, now, "H79.1", "79", "26734", "001303000042") for _ in range(50))
    plan = next(p for p in plans if p.steps[-1][0].value == "COMPLETED" and p.steps[-1][1] < now)
    store = open_store(f"sqlite:///{tmp / 'kpi.sqlite3'}")
    rows = [
        HistoryRow(plan.code, "79", plan.procedure_code, plan.channel.value, s.value, at,
                   plan.received_at, plan.due_at, at if s.value == "COMPLETED" else None)
        for s, at in plan.steps
    ]  # fmt: skip
    with store.transaction() as tx:
        tx.executemany("INSERT INTO dossier_history VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       [(f"e{i}", r.dossier_code, r.province_code, r.procedure_code, r.channel,
                         r.status, r.at, r.received_at, r.due_at, r.completed_at, "COMMUNE")
                        for i, r in enumerate(rows)])  # fmt: skip
    store.close()
    registry = CollectorRegistry()
    registry.register(KpiCollector(f"sqlite:///{tmp / 'kpi.sqlite3'}", lambda: now))
    return generate_latest(registry).decode()


def exported_names(exposition: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(exposition) for s in f.samples}


def recorded_names() -> set[str]:
    rules = yaml.safe_load((PROM / "rules" / "hub.rules.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (identifiers that are not functions,
    keywords, label names or durations)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        follows = text[match.end() :].lstrip()[:1]
        if follows == "(" or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_the_exposition_passes_promtool_check_metrics() -> None:
    exposition = populated_exposition()
    done = subprocess.run([promtool(), "check", "metrics"], check=False, input=exposition,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_design_names_are_exported() -> None:
    names = exported_names(populated_exposition())
    for name in ("hub_events_in_total", "hub_events_out_total", "hub_dead_letters_total",
                 "hub_event_latency_seconds_bucket", "hub_store_rows_total",
                 "hub_consumer_lag", "hub_quality_events_total"):  # fmt: skip
        assert name in names


def test_the_scrape_config_and_rules_are_valid() -> None:
    tool = promtool()
    for args in (["check", "config", str(PROM / "prometheus.yml")],
                 ["check", "rules", str(PROM / "rules" / "hub.rules.yml")]):  # fmt: skip
        done = subprocess.run([tool, *args], check=False, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_alert_rules_pass_their_unit_tests() -> None:
    done = subprocess.run([promtool(), "test", "rules", "tests/hub.rules.test.yml"],
                          cwd=PROM, capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_runbook_entry() -> None:
    rules = yaml.safe_load((PROM / "rules" / "hub.rules.yml").read_text())
    runbook = (REPO / "docs" / "OPERATIONS.md").read_text()
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 6
    for rule in alerts:
        assert f"### {rule['alert']}" in runbook, rule["alert"]
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboards_are_valid_and_query_only_exported_metrics(path: Path, tmp_path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    known = exported_names(populated_exposition()) | recorded_names() | {"up"}
    known |= exported_names(kpi_exposition(tmp_path))
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) >= 6, "unique panel ids"
    for panel in board["panels"]:
        assert panel["type"] in {"timeseries", "stat", "table", "bargauge", "gauge"}
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            unknown = metric_names(target["expr"]) - known
            assert not unknown, f"{panel['title']}: {unknown} not exported by the hub"


def test_metric_name_extraction_sees_through_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(hub_event_latency_seconds_bucket{a="b"}[5m])))'
    )
    assert metric_names(expr) == {"hub_event_latency_seconds_bucket"}
    assert metric_names("hub:dead_letter_ratio:rate5m > 0.05") == {"hub:dead_letter_ratio:rate5m"}


def test_no_panel_takes_the_max_of_per_worker_gauges() -> None:
    """Hub-wide figures come from the one KPI exporter; max() over workers picks one worker."""
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                assert "max by" not in target["expr"], (path.name, panel["title"])
