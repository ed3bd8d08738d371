"""The gateway over HTTPS and mutual TLS (issue 12, item 5), run as `hub gateway` would be:
HTTPS with the local CA; with client certificates on, no certificate, a certificate of another CA,
or a certificate whose subject is not the one bound to the key are refused."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.settings import Settings
from hub.tls import Issued, issue_certificate, new_authority
from tests.conftest import REPO, run_hub
from tests.integration.test_gateway import PROVINCE, birth_json
from tests.integration.workers import free_port

pytestmark = pytest.mark.integration
BOUND_SUBJECT = "CN=hotich-79,O=So Tu phap TP HCM"


@dataclass
class Pki:
    ca: Issued
    server: Issued
    bound: Issued  # BOUND_SUBJECT, by the gateway's client CA
    other: Issued  # another subject, same CA
    forged: Issued  # BOUND_SUBJECT, by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = new_authority(d / "ca", "Gateway test CA")
    rogue = new_authority(d / "rogue", "Gateway test CA")  # same name, other key
    return Pki(
        ca,
        issue_certificate(
            ca, d / "server", "CN=gateway", hosts=["127.0.0.1", "localhost"], server=True
        ),
        issue_certificate(ca, d / "bound", BOUND_SUBJECT, client=True),
        issue_certificate(ca, d / "other", "CN=benhvien-01,O=Benh vien", client=True),
        issue_certificate(rogue, d / "forged", BOUND_SUBJECT, client=True),
    )


@dataclass
class Running:
    url: str
    keys: dict[str, str]


def start_gateway(home: Path, pki: Pki, mutual: bool) -> Iterator[Running]:
    env = {"HUB_HOME": str(home), "HUB_GATEWAY_PORT": str(free_port()),
           "HUB_GATEWAY_TLS_CERT": str(pki.server.cert_file),
           "HUB_GATEWAY_TLS_KEY": str(pki.server.key_file)}  # fmt: skip
    if mutual:
        env["HUB_GATEWAY_CLIENT_CA"] = str(pki.ca.cert_file)
    scope = ["--source", "civil.birth", "--province", PROVINCE]
    keys = {
        "bound": run_hub(
            "gateway",
            "add-key",
            "bound",
            *scope,
            "--client-cert-subject",
            "O=So Tu phap TP HCM,CN=hotich-79",  # another order, the same name
            env=env,
        ).stdout.strip(),
        "free": run_hub("gateway", "add-key", "free", *scope, env=env).stdout.strip(),
    }
    log = (home / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "hub", "gateway"], cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **env})  # fmt: skip
    url = f"https://127.0.0.1:{env['HUB_GATEWAY_PORT']}"
    ctx = context(pki, pki.bound)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", context=ctx, timeout=2).close()
            break
        except OSError:
            assert proc.poll() is None, (home / "gateway.log").read_text()
            time.sleep(0.3)
    try:
        yield Running(url, keys)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def https_gateway(kafka_broker: Settings, pki: Pki,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:  # fmt: skip
    yield from start_gateway(tmp_path_factory.mktemp("https"), pki, mutual=False)


@pytest.fixture(scope="module")
def mtls_gateway(kafka_broker: Settings, pki: Pki,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:  # fmt: skip
    yield from start_gateway(tmp_path_factory.mktemp("mtls"), pki, mutual=True)


def context(pki: Pki, client: Issued | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert_file))
    if client is not None:
        ctx.load_cert_chain(str(client.cert_file), str(client.key_file))
    return ctx


def post(gw: Running, key: str, ctx: ssl.SSLContext) -> int:
    """The status of one birth POSTed with ``key`` over ``ctx`` (OSError: TLS refused)."""
    body = json.dumps([birth_json(PROVINCE)]).encode()
    request = urllib.request.Request(
        f"{gw.url}/v1/events/civil.birth", data=body, method="POST",
        headers={"Authorization": f"Bearer {gw.keys[key]}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def refused_at_handshake(gw: Running, key: str, ctx: ssl.SSLContext) -> bool:
    try:
        post(gw, key, ctx)
    except (urllib.error.URLError, ssl.SSLError, ConnectionError):
        return True
    return False


def test_https_works_with_the_local_ca(https_gateway: Running, pki: Pki) -> None:
    assert post(https_gateway, "free", context(pki, None)) == 202
    untrusting = ssl.create_default_context()  # the system's trust store: not our CA
    assert refused_at_handshake(https_gateway, "free", untrusting)
    plain = https_gateway.url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{plain}/healthz", timeout=5)


def test_a_key_bound_to_a_certificate_is_refused_without_it(https_gateway: Running,
                                                           pki: Pki) -> None:  # fmt: skip
    assert post(https_gateway, "bound", context(pki, None)) == 403


def test_mutual_tls_refuses_no_certificate_and_another_cas(mtls_gateway: Running,
                                                          pki: Pki) -> None:  # fmt: skip
    assert refused_at_handshake(mtls_gateway, "free", context(pki, None))
    assert refused_at_handshake(mtls_gateway, "bound", context(pki, pki.forged))
    assert post(mtls_gateway, "free", context(pki, pki.other)) == 202, "a valid certificate"


def test_mutual_tls_refuses_a_key_with_a_certificate_not_bound_to_it(
    mtls_gateway: Running, pki: Pki
) -> None:
    assert post(mtls_gateway, "bound", context(pki, pki.other)) == 403
    assert post(mtls_gateway, "bound", context(pki, pki.bound)) == 202
