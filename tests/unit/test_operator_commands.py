"""Operator commands that need no running service, run as an operator runs them: `hub tls ca`
and `hub tls issue` (checked with the `cryptography` package and a real TLS handshake), and
`hub gateway add-key` / `revoke-key` (the key file keeps hashes only; a revoked key is gone)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from hub.cli import cli


def hub(home: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, list(args), env={"HUB_HOME": str(home)})
    return done.exit_code, done.output


def test_tls_ca_and_issue_make_a_chain_python_trusts_for_the_names_asked(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert hub(tmp_path, "tls", "ca", str(pki), "--name", "So TT&TT CA")[0] == 0
    ca_pem = (pki / "ca.pem").read_bytes()
    assert hub(tmp_path, "tls", "ca", str(pki))[0] == 0
    assert (pki / "ca.pem").read_bytes() == ca_pem, "an existing CA is kept, not replaced"
    code, out = hub(tmp_path, "tls", "issue", str(pki), "gateway", "--subject",
                    "CN=gateway,O=Hub", "--host", "localhost", "--host", "127.0.0.1",
                    "--server", "--pkcs12")  # fmt: skip
    assert code == 0, out
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert = x509.load_pem_x509_certificate((pki / "gateway.pem").read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)  # raises when the signature is not the CA's
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert (pki / "gateway-key.pem").stat().st_mode & 0o077 == 0, "a private key: owner only"
    password = (pki / "gateway.p12.password").read_text().strip().encode()
    _, in_store, _ = pkcs12.load_key_and_certificates((pki / "gateway.p12").read_bytes(), password)
    assert in_store is not None and in_store.serial_number == cert.serial_number

    # A real handshake: Python's TLS client trusting only this CA accepts the server.
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki / "gateway.pem", pki / "gateway-key.pem")
    client_ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.getpeercert()["subject"]
            tls.sendall(b"x")
        thread.join(timeout=10)


def test_issue_without_a_ca_is_a_clear_error(tmp_path: Path) -> None:
    code, out = hub(tmp_path, "tls", "issue", str(tmp_path / "none"), "x", "--subject", "CN=x",
                    "--client")  # fmt: skip
    assert code != 0
    assert "ca" in out.lower() and "Traceback" not in out


def test_a_revoked_key_is_gone_and_revoking_it_again_says_so(tmp_path: Path) -> None:
    code, key = hub(tmp_path, "gateway", "add-key", "hotich-a", "--source", "civil.birth",
                    "--province", "01")  # fmt: skip
    assert code == 0
    key = key.strip().splitlines()[-1]
    code, _ = hub(tmp_path, "gateway", "add-key", "hotich-b", "--source", "*", "--province", "*")
    assert code == 0
    stored = (tmp_path / "gateway-keys.json").read_text()
    assert key not in stored, "only the key's hash is kept"
    code, out = hub(tmp_path, "gateway", "revoke-key", "hotich-a")
    assert code == 0 and "revoked hotich-a" in out
    names = json.dumps(json.loads((tmp_path / "gateway-keys.json").read_text()))
    assert "hotich-a" not in names and "hotich-b" in names
    code, out = hub(tmp_path, "gateway", "revoke-key", "hotich-a")
    assert code == 1 and "no key named 'hotich-a'" in out


@pytest.mark.parametrize(
    ("name", "source", "province", "says"),
    [
        ("", "*", "*", "key name"),
        ("hotich\nINFO forged audit line", "*", "*", "key name"),
        ("-x", "*", "*", "No such option"),  # read as an option: click refuses it
        ("a" * 65, "*", "*", "key name"),
        ("hotich-79", "civil.brith", "79", "unknown source civil.brith"),
        ("hotich-79", "civil.birth", "99", "unknown 2025 province code 99"),
        ("hotich-79", "civil.birth", "02", "unknown 2025 province code 02"),  # Hà Giang, merged
    ],
)
def test_a_key_with_a_bad_name_or_a_scope_that_does_not_exist_is_refused(
    tmp_path: Path, name: str, source: str, province: str, says: str
) -> None:
    code, out = hub(tmp_path, "gateway", "add-key", name, "--source", source,
                    "--province", province)  # fmt: skip
    assert code != 0 and says in out, out
    assert not (tmp_path / "gateway-keys.json").exists(), "no key was made"


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--poison", "2"],
        ["simulate", "--count", "-1"],
        ["simulate", "--rate", "-5"],
        ["simulate", "--provinces", "35"],  # 34 provinces since July 2025
        ["demo", "--duration", "-1"],
        ["demo", "--rate", "0"],
        ["bench", "--events", "0"],
        ["bench", "--runs", "0"],
        ["bench", "--latency-seconds", "0"],
        ["gateway", "audit", "--limit", "-5"],  # PostgreSQL refuses a negative LIMIT
    ],
)
def test_out_of_range_numbers_are_usage_errors_before_anything_starts(
    tmp_path: Path, args: list[str]
) -> None:
    code, out = hub(tmp_path, *args)
    assert code == 2 and "is not in the range" in out, out
    assert not (tmp_path / "kafka").exists(), "no broker was started"


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--count", "5"],
        ["dlq", "list"],
        ["dlq", "replay", "--topic", "src.civil.birth.v1"],
        ["bench", "--events", "10"],
        ["worker"],
    ],
)
def test_an_unreachable_broker_is_one_clear_line_not_a_traceback(
    tmp_path: Path, args: list[str]
) -> None:
    from tests.conftest import run_hub

    ports = []
    for _ in range(2):  # ports nothing listens on: Kafka's, and the worker's /metrics
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    port = ports[0]
    env = {"HUB_HOME": str(tmp_path), "HUB_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
           "HUB_METRICS_PORT": str(ports[1])}  # fmt: skip
    done = run_hub(*args, env=env, check=False, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "Error: " in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["kpi", "serve"], "HUB_KPI_PORT"),
        (["gateway"], "HUB_GATEWAY_PORT"),
        (["worker"], "HUB_METRICS_PORT"),
        (["deliver"], "HUB_DELIVERY_METRICS_PORT"),
    ],
)
def test_a_server_whose_port_is_taken_says_which_and_by_which_setting(
    tmp_path: Path, args: list[str], setting: str
) -> None:
    from tests.conftest import run_hub

    (tmp_path / "agency-endpoints.json").write_text('{"agencies": {}}')
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"HUB_HOME": str(tmp_path), "HUB_KAFKA_BOOTSTRAP": "127.0.0.1:1", setting: str(port)}
        done = run_hub(*args, env=env, check=False, timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port} ({setting})" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_wrong_fhir_config_stops_the_gateway_naming_the_file_and_the_fields(
    tmp_path: Path,
) -> None:
    (tmp_path / "fhir.json").write_text(
        '{"facilities": {"79001": {"province_code": "7", "commune_code": "79001"}}}'
    )
    code, out = hub(tmp_path, "gateway")
    assert code == 1
    assert str(tmp_path / "fhir.json") in out and "facilities.79001.province_code" in out


@pytest.mark.parametrize(
    "topic",
    ["src.civil.death.v1", "agency.police.residence.v1", "agency.ack.police.v1", "agency.ack.v1"],
)
def test_replay_takes_every_topic_the_hub_dead_letters_from(tmp_path: Path, topic: str) -> None:
    """Sources, agency tasks (refused deliveries) and answers (ack_without_task: the runbook
    replays them once their tasks are in): past the argument check, to the broker."""
    env = {"HUB_HOME": str(tmp_path), "HUB_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    done = CliRunner().invoke(cli, ["dlq", "replay", "--topic", topic, "--dry-run"], env=env)
    assert done.exit_code == 1 and "cannot reach Kafka" in done.output, done.output
    other = CliRunner().invoke(cli, ["dlq", "replay", "--topic", "hub.health.v1"], env=env)
    assert other.exit_code == 2 and "has no dead letters to replay" in other.output


@pytest.mark.parametrize("code", ["99", "02", "1"])  # none; Hà Giang (merged 2025); not a code
def test_kpi_for_a_province_that_is_not_in_the_2025_system_is_a_usage_error(
    tmp_path: Path, code: str
) -> None:
    code_, out = hub(tmp_path, "kpi", "--province", code)
    assert code_ == 2 and "is not a 2025 province code" in out, out
    assert hub(tmp_path, "kpi", "--province", "79")[0] == 0  # Hồ Chí Minh City
