"""The one place Kafka client settings are built: right options, and wrong settings named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.kafka.client import KafkaSettingsError, connection, faust_broker, options
from hub.settings import KafkaSecurity, Settings
from hub.tls import issue_certificate, new_authority

REPO = Path(__file__).resolve().parents[2]


def secure(tmp_path: Path, **extra: object) -> Settings:
    password = tmp_path / "pw"
    password.write_text("s3cret\n")
    values: dict[str, object] = {
        "kafka_security_protocol": KafkaSecurity.SASL_SSL,
        "kafka_username": "worker",
        "kafka_password_file": password,
    }
    return Settings(**{**values, **extra})


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert options(connection(Settings())) == {"bootstrap_servers": "127.0.0.1:9092"}
    assert "broker_credentials" not in faust_broker(connection(Settings()))


def test_sasl_ssl_gives_every_client_the_same_scram_and_tls(tmp_path: Path) -> None:
    opts = options(connection(secure(tmp_path)))
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("worker", "s3cret")
    assert opts["ssl_context"] is not None
    creds = faust_broker(connection(secure(tmp_path)))["broker_credentials"]
    assert (creds.username, creds.password, creds.mechanism.value) == (
        "worker", "s3cret", "SCRAM-SHA-512",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"kafka_username": ""}, "HUB_KAFKA_USERNAME"),
        ({"kafka_password_file": None}, "HUB_KAFKA_PASSWORD_FILE"),
        ({"kafka_password_file": Path("/nonexistent/pw")}, "HUB_KAFKA_PASSWORD_FILE"),
        ({"kafka_ca_file": Path("/nonexistent/ca.pem")}, "HUB_KAFKA_CA_FILE"),
        ({"kafka_sasl_mechanism": "PLAIN"}, "HUB_KAFKA_SASL_MECHANISM"),
    ],
)
def test_a_wrong_setting_is_named(tmp_path: Path, change: dict[str, object], named: str) -> None:
    with pytest.raises(KafkaSettingsError, match=named):
        connection(secure(tmp_path, **change))


def test_a_ca_file_that_is_not_a_certificate_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(KafkaSettingsError, match="HUB_KAFKA_CA_FILE"):
        connection(secure(tmp_path, kafka_ca_file=bad))


def test_half_a_client_certificate_is_named(tmp_path: Path) -> None:
    ca = new_authority(tmp_path / "ca", "test CA")
    cert = issue_certificate(ca, tmp_path / "client", "CN=client", client=True)
    with pytest.raises(KafkaSettingsError, match="HUB_KAFKA_KEY_FILE"):
        connection(secure(tmp_path, kafka_cert_file=cert.cert_file))
    conn = connection(secure(tmp_path, kafka_ca_file=ca.cert_file, kafka_cert_file=cert.cert_file,
                             kafka_key_file=cert.key_file))  # fmt: skip
    assert conn.ssl_context is not None


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(KafkaSettingsError, match=r"HUB_KAFKA_PASSWORD_FILE.*empty"):
        connection(secure(tmp_path, kafka_password_file=empty))


def test_the_command_fails_at_start_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HUB_HOME": str(tmp_path),
           "HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "HUB_KAFKA_USERNAME": "worker"}  # fmt: skip
    for args in (["topics", "create"], ["worker"], ["status", "--json"]):
        done = subprocess.run([sys.executable, "-m", "hub", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode != 0, args
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "HUB_KAFKA_PASSWORD_FILE" in lines[0], (args, done.stderr)
