"""Agency delivery without Kafka: signatures, what an HTTP answer means, backoff, endpoints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.delivery.signing import ID, SIGNATURE, TIMESTAMP, new_secret, secret_problem, sign
from connectors.delivery.webhook import (
    Endpoints,
    EndpointsError,
    RetryPolicy,
    Verdict,
    backoff,
    classify,
    task_body,
    url_problem,
)
from hub.domain.records import Agency
from hub.domain.topics import AgencyTopic, SourceTopic
from hub.domain.workflows import WORKFLOW_BY_NAME, expand, topics_of
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec

SECRET = new_secret()
BODY = '{"task_id": "t-1", "fields": {"child_name": "Nguyễn Văn An"}}'.encode()


def test_signature_matches_an_independent_hmac_over_id_timestamp_and_body() -> None:
    now = int(time.time())
    headers = sign([SECRET], "t-1", BODY, now)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"t-1.{now}.".encode() + BODY, hashlib.sha256).digest()
    assert headers == {ID: "t-1", TIMESTAMP: str(now),
                       SIGNATURE: "v1," + base64.b64encode(mac).decode()}  # fmt: skip


def test_the_standards_reference_verifier_accepts_a_genuine_delivery() -> None:
    headers = sign([SECRET], "t-1", BODY, int(time.time()))
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


@pytest.mark.parametrize("change", ["id", "timestamp", "body", "signature", "old"])
def test_the_reference_verifier_rejects_any_alteration(change: str) -> None:
    now = int(time.time())
    headers = sign([SECRET], "t-1", BODY, now)
    body = BODY
    if change == "id":  # the deduplication key is signed: it cannot be swapped
        headers[ID] = "t-2"
    elif change == "timestamp":
        headers[TIMESTAMP] = str(now - 1)
    elif change == "body":
        body = BODY.replace(b"An", b"Anh")
    elif change == "signature":
        headers[SIGNATURE] = sign([new_secret()], "t-1", BODY, now)[SIGNATURE]
    else:  # a genuine delivery replayed six minutes later
        headers = sign([SECRET], "t-1", BODY, now - 360)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = new_secret(), new_secret()
    headers = sign([new, old], "t-1", BODY, int(time.time()))
    for secret in (new, old):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("s3cret", "starts with"),
        ("whsec_" + base64.b64encode(b"x" * 31).decode(), "at least 32 bytes"),
        ("whsec_not base64!", "base64"),
    ],
)
def test_weak_or_malformed_secrets_are_refused(secret: str, problem: str) -> None:
    assert problem in (secret_problem(secret) or "")
    assert secret_problem(new_secret()) is None


@pytest.mark.parametrize(("status", "verdict"), [
    (200, Verdict.DELIVERED), (202, Verdict.DELIVERED), (204, Verdict.DELIVERED),
    (None, Verdict.RETRY), (500, Verdict.RETRY), (503, Verdict.RETRY), (408, Verdict.RETRY),
    (425, Verdict.RETRY), (429, Verdict.RETRY),
    (400, Verdict.REFUSED), (401, Verdict.REFUSED), (404, Verdict.REFUSED),
    (422, Verdict.REFUSED), (301, Verdict.REDIRECTED), (302, Verdict.REDIRECTED),
    (307, Verdict.REDIRECTED), (308, Verdict.REDIRECTED),
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
    assert topics_of(Agency.SOCIAL_INSURANCE) == sorted(
        [AgencyTopic.HEALTH_INSURANCE.value, AgencyTopic.SOCIAL_INSURANCE_BENEFITS.value]
    )
    assert topics_of(Agency.COMMUNE_PEOPLES_COMMITTEE) == [
        AgencyTopic.COMMUNE_SOCIAL_PROTECTION.value
    ]
    assert topics_of(Agency.PROVINCIAL_HOME_AFFAIRS) == [AgencyTopic.MERITORIOUS_BENEFITS.value]
    assert topics_of(Agency.SOCIAL_AFFAIRS) == [], "retired in the 2025 reorganisation"


def test_body_carries_only_the_fields_the_step_declares() -> None:
    traffic = Traffic(Codec(), seed=3, provinces=2, population=50)
    birth = traffic.event(SourceTopic.BIRTH)
    now = datetime.now(UTC)
    steps = {s.topic: s for s in WORKFLOW_BY_NAME["birth"].steps}
    for topic, task in expand(birth, "01", "00004", now)[0]:
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
        "url": "https://bca.example.gov.vn/hub", "key_id": "k1", "secret": SECRET}}})  # fmt: skip
    endpoints = Endpoints.load(path)
    police = endpoints.agencies[Agency.POLICE]
    assert police.concurrency == 4
    assert police.signing_secrets() == [SECRET]
    assert SECRET not in repr(endpoints)


@pytest.mark.parametrize(
    "weak", ["whsec_" + base64.b64encode(b"w3ak-but-real" * 2).decode(), "plain-s3cret-value"]
)
def test_a_refused_secret_is_named_but_never_printed(tmp_path: Path, weak: str) -> None:
    """The error says which secret of which agency is wrong and why, and not the secret (an
    operator pastes such errors into tickets; a weak secret may still be the one in use)."""
    path = _write(tmp_path / "e.json", {"agencies": {
        "POLICE": {"url": "https://bca.example.gov.vn/hub", "secret": SECRET,
                   "previous_secret": weak}}})  # fmt: skip
    with pytest.raises(EndpointsError) as refused:
        Endpoints.load(path)
    assert "agencies.POLICE.previous_secret" in str(refused.value)
    assert weak not in str(refused.value) and SECRET not in str(refused.value)


def test_an_endpoints_file_readable_by_others_refuses_to_start(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.json", {"agencies": {"POLICE": {
        "url": "https://bca.example.gov.vn/hub", "secret": SECRET}}})  # fmt: skip
    path.chmod(0o644)
    with pytest.raises(EndpointsError, match="chmod 600"):
        Endpoints.load(path)


def test_missing_endpoints_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(EndpointsError, match=re.escape(str(tmp_path / "none.json"))):
        Endpoints.load(tmp_path / "none.json")


@pytest.mark.parametrize("entry", [
    {"url": "ftp://x", "secret": SECRET},
    {"url": "http://bca.example.gov.vn/hub", "secret": SECRET},
    {"url": "http://10.0.0.5/hub", "secret": SECRET},
    {"url": "https://x", "secret": "short"},
    {"url": "https://x"},
])  # fmt: skip
def test_bad_endpoint_entries_are_refused_with_the_file_named(
    tmp_path: Path, entry: dict[str, str]
) -> None:
    path = _write(tmp_path / "bad.json", {"agencies": {"POLICE": entry}})
    with pytest.raises(EndpointsError, match=r"bad\.json"):
        Endpoints.load(path)


def test_plain_http_is_accepted_for_loopback_only() -> None:
    assert url_problem("http://127.0.0.1:8080/police") is None
    assert url_problem("http://localhost/police") is None
    assert url_problem("http://[::1]:9/police") is None
    assert url_problem("http://192.168.1.4/police") is not None


def test_unknown_agency_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.json", {"agencies": {"TAX": {
        "url": "https://x", "secret": SECRET}}})  # fmt: skip
    with pytest.raises(EndpointsError):
        Endpoints.load(path)


def test_shipped_example_endpoints_file_needs_real_secrets(tmp_path: Path) -> None:
    """The example's placeholders are refused (never usable as they stand); with generated
    secrets the same file loads and names every agency."""
    repo = Path(__file__).resolve().parents[2]
    example = repo / "deploy" / "agency-endpoints.example.json"
    with pytest.raises(EndpointsError, match="whsec_"):
        Endpoints.load(_write(tmp_path / "as-shipped.json", json.loads(example.read_text())))
    data = json.loads(example.read_text())
    for entry in data["agencies"].values():
        entry["secret"] = new_secret()
    endpoints = Endpoints.load(_write(tmp_path / "filled.json", data))
    assert set(endpoints.agencies) == {a for a in Agency if topics_of(a)}


def test_readme_verification_recipe_uses_the_standards_library() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```python\nfrom standardwebhooks") + len("```python\n")
    recipe: dict[str, Any] = {}
    exec(readme[start : readme.index("```", start)], recipe)
    now = int(time.time())
    headers = sign([SECRET], "t-1", BODY, now)
    assert recipe["verify"](SECRET, headers, BODY) == "t-1"
    with pytest.raises(WebhookVerificationError):
        recipe["verify"](SECRET, sign([SECRET], "t-1", BODY, now - 400), BODY)
    with pytest.raises(WebhookVerificationError):
        recipe["verify"](SECRET, headers, BODY + b" ")
