import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.settings import IdentityMode, Settings


def test_defaults_match_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        monkeypatch.delenv(name)
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.resolved_store_url.startswith("sqlite:///")
    assert s.resolved_store_url.endswith(".hub/store.sqlite3")
    assert s.identity_mode is IdentityMode.FLAG


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", "broker-1:19092,broker-2:19092")
    monkeypatch.setenv("HUB_STORE_URL", "postgresql://hub@db/hub")
    monkeypatch.setenv("HUB_METRICS_PORT", "9200")
    monkeypatch.setenv("HUB_PARTITIONS", "24")
    monkeypatch.setenv("HUB_HOME", "/tmp/elsewhere")
    s = Settings()
    assert s.kafka_host_port == ("broker-1", 19092)
    assert s.resolved_store_url == "postgresql://hub@db/hub"
    assert s.metrics_port == 9200
    assert s.partitions == 24
    assert s.kafka_dir == Path("/tmp/elsewhere/kafka")


@pytest.mark.parametrize("bad", ["localhost", "host:port", ":9092"])
def test_bootstrap_without_port_is_rejected(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", bad)
    with pytest.raises(ValidationError, match="host:port"):
        Settings()


def test_partitions_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HUB_METRICS_PORT", "70000"), ("HUB_GATEWAY_PORT", "-1"), ("HUB_KPI_PORT", "0"),
     ("HUB_DELIVERY_METRICS_PORT", "65536"), ("HUB_KAFKA_CONTROLLER_PORT", "0")],
)  # fmt: skip
def test_a_port_outside_1_to_65535_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Caught when the settings are read, naming the setting (not an OverflowError from a
    socket when the server starts)."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("HUB_").lower()):
        Settings()
