"""Schemathesis against the gateway's own OpenAPI document: whatever it is sent, a running
gateway answers as the document says (documented status codes and bodies, no 5xx but 503)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as given_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from connectors.ingest.credentials import Credentials
from connectors.ingest.gateway import openapi_document
from hub.settings import Settings
from tests.integration.workers import REPO, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(kafka_broker: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[str, str]
]:  # fmt: skip
    home: Path = tmp_path_factory.mktemp("gateway")
    keys = home / "keys.json"
    key = Credentials.load(keys).add(keys, "schemathesis", ["*"], ["*"])
    port = free_port()
    env = {**os.environ, "HUB_HOME": str(home), "HUB_GATEWAY_PORT": str(port),
           "HUB_GATEWAY_CREDENTIALS": str(keys)}  # fmt: skip
    log = (home / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "hub", "gateway"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError((home / "gateway.log").read_text()[-2000:]) from None
            time.sleep(0.3)
    yield url, key
    proc.terminate()
    proc.wait(timeout=30)


# The document the gateway serves at /openapi.json (a test below checks they are the same).
schema = schemathesis.openapi.from_dict(openapi_document())


def test_served_document_is_the_one_tested(gateway: tuple[str, str]) -> None:
    with urllib.request.urlopen(f"{gateway[0]}/openapi.json", timeout=5) as r:
        assert json.loads(r.read()) == openapi_document()


@schema.parametrize()
@given_settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_gateway_answers_as_its_openapi_document_says(case: Any, gateway: tuple[str, str]) -> None:
    # Every check but "schema-valid data is accepted": a JSON Schema cannot say which
    # province and commune codes exist or that a personal ID's digits agree with the sex and
    # birth year, so schema-valid events can rightly get the documented 422.
    case.call_and_validate(base_url=gateway[0], excluded_checks=[positive_data_acceptance],
                           headers={"Authorization": f"Bearer {gateway[1]}"})  # fmt: skip
