"""Agency delivery without Kafka: signatures, what an HTTP answer means, backoff, endpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.delivery.signing import (
    KEY_ID,
    SIGNATURE,
    TIMESTAMP,
    VerificationError,
    sign,
    verify,
)
from connectors.delivery.webhook import (
    Endpoints,
    EndpointsError,
    RetryPolicy,
    Verdict,
    backoff,
    classify,
    task_body,
    topics_of,
)
from hub.domain.records import Agency
from hub.domain.topics import AgencyTopic, SourceTopic
from hub.domain.workflows import WORKFLOW_BY_NAME, expand
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec

SECRET = b"shared-secret-of-the-police"
BODY = '{"task_id": "t-1", "fields": {"child_name": "Nguyễn Văn An"}}'.encode()


def test_signature_matches_an_independent_hmac_over_timestamp_dot_body() -> None:
    headers = sign(SECRET, "police-2026-11", BODY, 1_790_000_000)
    expected = hmac.new(SECRET, b"1790000000." + BODY, hashlib.sha256).hexdigest()
    assert headers == {KEY_ID: "police-2026-11", TIMESTAMP: "1790000000",
                       SIGNATURE: f"sha256={expected}"}  # fmt: skip


def test_verification_recipe_accepts_a_fresh_delivery() -> None:
    headers = sign(SECRET, "k1", BODY, 1_790_000_000)
    assert verify({"k1": SECRET}, headers, BODY, now=1_790_000_100) == "k1"


def test_replayed_old_delivery_is_rejected() -> None:
    headers = sign(SECRET, "k1", BODY, 1_790_000_000)
    with pytest.raises(VerificationError, match="outside"):
        verify({"k1": SECRET}, headers, BODY, now=1_790_000_000 + 301)


@pytest.mark.parametrize("change", ["body", "key_id", "signature", "timestamp"])
def test_tampering_is_rejected(change: str) -> None:
    headers = sign(SECRET, "k1", BODY, 1_790_000_000)
    body = BODY
    if change == "body":
        body = BODY.replace(b"t-1", b"t-2")
    elif change == "key_id":
        headers[KEY_ID] = "k9"
    elif change == "signature":
        headers[SIGNATURE] = headers[SIGNATURE][:-1] + "0"
        if headers[SIGNATURE] == sign(SECRET, "k1", BODY, 1_790_000_000)[SIGNATURE]:
            headers[SIGNATURE] = headers[SIGNATURE][:-1] + "1"
    else:
        headers[TIMESTAMP] = "1790000001"
    with pytest.raises(VerificationError):
        verify({"k1": SECRET}, headers, body, now=1_790_000_000)


def test_rotation_old_and_new_keys_both_verify_by_key_id() -> None:
    keys = {"old": b"first secret", "new": b"second secret"}
    for key_id, secret in keys.items():
        assert verify(keys, sign(secret, key_id, BODY, 100), BODY, now=100) == key_id


@pytest.mark.parametrize(("status", "verdict"), [
    (200, Verdict.DELIVERED), (202, Verdict.DELIVERED), (204, Verdict.DELIVERED),
    (None, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY), (408, Verdict.RETRY),
    (425, Verdict.RETRY), (429, Verdict.RETRY),
    (400, Verdict.REFUSED), (401, Verdict.REFUSED), (404, Verdict.REFUSED),
    (422, Verdict.REFUSED), (301, Verdict.REFUSED),
])  # fmt: skip
def test_http_answers_are_classified(status: int | None, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=4.0)
    assert [backoff(n, policy, lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff(2, policy, lambda: 0.25) == 0.5
    assert backoff(3, policy, lambda: 0.0) == 0.0


def test_each_agency_reads_the_topics_its_workflow_steps_name() -> None:
    assert topics_of(Agency.POLICE) == [AgencyTopic.RESIDENCE.value]
    assert topics_of(Agency.SOCIAL_INSURANCE) == [AgencyTopic.HEALTH_INSURANCE.value]
    assert topics_of(Agency.SOCIAL_AFFAIRS) == [AgencyTopic.FUNERAL_ALLOWANCE.value]


def test_body_carries_only_the_fields_the_step_declares() -> None:
    traffic = Traffic(Codec(), seed=3, provinces=2, population=50)
    birth = traffic.event(SourceTopic.BIRTH)
    now = datetime.now(UTC)
    steps = {s.topic: s for s in WORKFLOW_BY_NAME["birth"].steps}
    for topic, task in expand(birth, "01", "00004", now, timedelta(days=1)):
        body = json.loads(task_body(task))
        assert set(body["fields"]) <= set(steps[topic].fields)
        assert body["task_id"] == task.task_id
        assert body["agency"] == steps[topic].agency.value


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    path.chmod(0o600)
    return path


def test_endpoints_file_loads_and_hides_secrets(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.json", {"agencies": {"POLICE": {
        "url": "https://bca.example.gov.vn/hub", "key_id": "k1", "secret": "s3cret"}}})  # fmt: skip
    endpoints = Endpoints.load(path)
    police = endpoints.agencies[Agency.POLICE]
    assert police.concurrency == 4
    assert police.secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(endpoints)


def test_missing_endpoints_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(EndpointsError, match=re.escape(str(tmp_path / "none.json"))):
        Endpoints.load(tmp_path / "none.json")


@pytest.mark.parametrize("entry", [
    {"url": "ftp://x", "key_id": "k", "secret": "s"},
    {"url": "https://x", "key_id": "", "secret": "s"},
    {"url": "https://x", "key_id": "k"},
])  # fmt: skip
def test_bad_endpoint_entries_are_refused_with_the_file_named(
    tmp_path: Path, entry: dict[str, str]
) -> None:
    path = _write(tmp_path / "bad.json", {"agencies": {"POLICE": entry}})
    with pytest.raises(EndpointsError, match=r"bad\.json"):
        Endpoints.load(path)


def test_unknown_agency_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.json", {"agencies": {"TAX": {
        "url": "https://x", "key_id": "k", "secret": "s"}}})  # fmt: skip
    with pytest.raises(EndpointsError):
        Endpoints.load(path)


def test_shipped_example_endpoints_file_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    endpoints = Endpoints.load(repo / "deploy" / "agency-endpoints.example.json")
    assert set(endpoints.agencies) == set(Agency)


def test_readme_verification_recipe_agrees_with_the_signer() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```python\nimport hashlib, hmac, time") + len("```python\n")
    recipe: dict[str, Any] = {}
    exec(readme[start : readme.index("```", start)], recipe)
    now = int(time.time())
    headers = sign(SECRET, "k1", BODY, now)
    recipe["verify"]({"k1": SECRET}, headers, BODY)
    with pytest.raises(PermissionError, match="replayed"):
        recipe["verify"]({"k1": SECRET}, sign(SECRET, "k1", BODY, now - 400), BODY)
    with pytest.raises(PermissionError, match="signature"):
        recipe["verify"]({"k1": SECRET}, headers, BODY + b" ")
