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
    "HUB_KAFKA_SECRETS_DIR": "/run/hub/kafka",
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


def broker_properties() -> dict[str, str]:
    """The configuration the compose brokers start with (deploy/kafka/compose/broker.sh)."""
    script = (REPO / "deploy/kafka/compose/broker.sh").read_text()
    body = script.split("<<PROPS\n", 1)[1].split("\nPROPS\n", 1)[0]
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def test_no_kafka_listener_in_compose_is_plaintext() -> None:
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    brokers = {n: s for n, s in spec["services"].items() if n.startswith("kafka-")}
    for name, broker in brokers.items():
        assert broker["command"] == ["bash", "/etc/hub/broker.sh"], name
        assert "deploy/kafka/compose/broker.sh" in " ".join(broker["volumes"]), name
        assert "ports" not in broker, f"{name} is published outside the stack"
        assert broker["networks"] == ["internal"], name
        assert not any("LISTENER" in key for key in broker["environment"]), name
    assert spec["networks"]["internal"]["internal"] is True
    props = broker_properties()
    protocols = {
        entry.split(":")[1] for entry in props["listener.security.protocol.map"].split(",")
    }
    assert protocols <= {"SASL_SSL", "SSL"}, protocols
    listeners = [entry.split("://")[0] for entry in props["listeners"].split(",")]
    assert all(props["listener.security.protocol.map"].count(f"{lst}:") for lst in listeners)
    assert "PLAINTEXT" not in props["listener.security.protocol.map"].replace("SASL_", "")
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    assert (props["min.insync.replicas"], props["default.replication.factor"]) == ("2", "3")


def test_every_hub_service_has_its_own_kafka_principal() -> None:
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    kafka_clients = {n: s for n, s in spec["services"].items()
                     if str(s.get("image", "")).startswith("lienthong-hub")
                     and n not in ("certs", "kpi")}  # fmt: skip  # kpi reads the store only
    assert set(kafka_clients) == {"topics", "worker", "gateway", "delivery"}
    users = {}
    for name, service in kafka_clients.items():
        env = service["environment"]
        assert env["HUB_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        secret = env["HUB_KAFKA_PASSWORD_FILE"].removeprefix("/run/secrets/")
        assert secret in service["secrets"], f"{name}: its password is a compose secret"
        users[name] = (env["HUB_KAFKA_USERNAME"], secret)
    assert len({u for u, _ in users.values()}) == len(users), users
    assert len({s for _, s in users.values()}) == len(users), users
    created = spec["services"]["topics"]["command"][0]
    for name, (user, _secret) in users.items():
        if name != "topics":
            assert f"users add {user} --role {user}" in created, f"{user} is created with its role"
    kpi = spec["services"]["kpi"]
    assert "HUB_KAFKA_USERNAME" not in kpi["environment"] and "secrets" not in kpi


def test_the_gateway_is_served_over_https_only() -> None:
    spec = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    gateway = spec["services"]["gateway"]
    assert (
        gateway["environment"]["HUB_GATEWAY_TLS_CERT"]
        and gateway["environment"]["HUB_GATEWAY_TLS_KEY"]
    )
    assert "https://" in " ".join(gateway["healthcheck"]["test"])
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "hub-gateway")
    assert job["scheme"] == "https"
