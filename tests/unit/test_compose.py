"""docker-compose.yml: valid for Debian's docker-compose (no engine needed), and shaped as the
production-like stack the design describes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


REQUIRED = {
    "HUB_DB_PASSWORD": "a-real-password",
    "HUB_AGENCY_ENDPOINTS_FILE": "/run/hub/agency-endpoints.json",
    "HUB_GRAFANA_ADMIN_PASSWORD_FILE": "/run/hub/grafana-admin-password",
}


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose missing: apt-get install docker-compose")  # fails in CI
    return subprocess.run([tool, "-f", "docker-compose.yml", "config", "-q"], cwd=REPO,
                          capture_output=True, text=True, check=False,
                          env={"PATH": os.environ.get("PATH", ""), **env})  # fmt: skip


def test_compose_file_validates() -> None:
    done = compose_config(REQUIRED)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_has_no_default_secrets(missing: str) -> None:
    """Every password and secrets file is required: without one, the stack does not start."""
    done = compose_config({k: v for k, v in REQUIRED.items() if k != missing})
    assert done.returncode != 0 and missing in done.stderr, done.stderr


def test_grafana_needs_a_login_and_no_example_secret_is_mounted() -> None:
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = spec["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")
    files = [s["file"] for s in spec["secrets"].values()]
    assert not any("example" in f for f in files), files


def test_compose_stack_has_every_part_with_health_and_restart() -> None:
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = spec["services"]
    kafka = [s for name, s in services.items() if name.startswith("kafka-")]
    assert len(kafka) == 3 and all(s["image"].startswith("apache/kafka:") for s in kafka)
    assert {s["environment"]["KAFKA_NODE_ID"] for s in kafka} == {"1", "2", "3"}
    for name in ("topics", "worker", "gateway", "delivery", "kpi", "postgres", "prometheus",
                 "grafana"):  # fmt: skip
        assert name in services, name
    for name, service in services.items():
        assert "restart" in service, f"{name} has no restart policy"
        assert "healthcheck" in service, f"{name} has no healthcheck"
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker, "scalable with --scale"
    assert worker["environment"]["HUB_STORE_URL"].startswith("postgresql://")
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for shipped in ("deploy/prometheus/prometheus.yml", "deploy/prometheus/rules",
                    "deploy/grafana/provisioning", "deploy/grafana/dashboards"):  # fmt: skip
        assert shipped in mounts and (REPO / shipped).exists()
    assert (REPO / "Dockerfile").exists()
