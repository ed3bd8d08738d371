"""The gateway as a hostile or careless tenant would use it: another credential's
Idempotency-Key or event ids, a restarted gateway, bodies built to cost memory, a flood, an
unbound FHIR facility. Every answer is 202-and-produced or a 4xx — never 202-and-dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer

from connectors.ingest.credentials import Credentials
from connectors.ingest.gateway import Gateway, Limits
from hub.domain.topics import SourceTopic
from hub.settings import Settings
from hub.store.ingest import IngestLedger
from hub.store.sql import open_store
from tests.integration.test_gateway import PROVINCE, auth, birth_json, count_on_topic
from tests.integration.workers import REPO

pytestmark = pytest.mark.integration
URL = "/v1/events/civil.birth"


class Tenants:
    def __init__(self, tmp_path: Path, bootstrap: str) -> None:
        self.tmp_path = tmp_path
        self.bootstrap = bootstrap
        self.keys = tmp_path / "keys.json"
        self.store_url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
        creds = Credentials.load(self.keys)
        self.a = creds.add(self.keys, "hotich-a", ["civil.birth"], [PROVINCE])
        self.b = creds.add(self.keys, "hotich-b", ["civil.birth"], [PROVINCE])

    def gateway(self, limits: Limits | None = None) -> tuple[Gateway, Any]:
        store = open_store(self.store_url)
        ledger = IngestLedger(store, timedelta(days=7))
        gw = Gateway(self.bootstrap, Credentials.load(self.keys), 1_000_000, ledger=ledger,
                     limits=limits, credentials_path=self.keys)  # fmt: skip
        return gw, store


@pytest.fixture
async def tenants(kafka_broker: Settings, tmp_path: Path) -> AsyncIterator[Tenants]:
    yield Tenants(tmp_path, kafka_broker.kafka_bootstrap)


async def test_another_credentials_idempotency_key_is_unrelated(tenants: Tenants) -> None:
    gw, store = tenants.gateway()
    key = f"shared-{uuid.uuid4().hex}"
    b_birth, a_birth = birth_json(PROVINCE), birth_json(PROVINCE)
    async with TestClient(TestServer(gw.app())) as c:
        rb = await c.post(URL, json=b_birth, headers={**auth(tenants.b), "Idempotency-Key": key})
        ra = await c.post(URL, json=a_birth, headers={**auth(tenants.a), "Idempotency-Key": key})
        assert rb.status == ra.status == 202, await ra.text()
        assert (await ra.json())["accepted"] == [a_birth["event_id"]]
        # The same key and credential with a different body is a client bug, said so.
        other = birth_json(PROVINCE)
        reused = await c.post(URL, json=other, headers={**auth(tenants.a), "Idempotency-Key": key})
        assert reused.status == 422
        assert (await reused.json())["reason"] == "idempotency_key_reused"
    store.close()
    ids = {a_birth["event_id"], b_birth["event_id"], other["event_id"]}
    assert await count_on_topic(tenants.bootstrap, ids) == 2, "both produced, the reuse not"


async def test_an_event_id_of_another_credential_is_a_conflict(tenants: Tenants) -> None:
    gw, store = tenants.gateway()
    real = birth_json(PROVINCE)
    forged = {**birth_json(PROVINCE), "event_id": real["event_id"]}
    async with TestClient(TestServer(gw.app())) as c:
        first = await c.post(URL, json=forged, headers=auth(tenants.b))  # pre-empts
        assert first.status == 202
        second = await c.post(URL, json=real, headers=auth(tenants.a))
        assert second.status == 409, await second.text()
        body = await second.json()
        assert body["reason"] == "event_id_conflict" and body["event_ids"] == [real["event_id"]]
    store.close()


async def test_a_restarted_gateway_honours_an_earlier_idempotency_key(tenants: Tenants) -> None:
    birth, key = birth_json(PROVINCE), f"restart-{uuid.uuid4().hex}"
    headers = {**auth(tenants.a), "Idempotency-Key": key}
    for _ in range(2):  # two gateway lifetimes over the same central store
        gw, store = tenants.gateway()
        async with TestClient(TestServer(gw.app())) as c:
            r = await c.post(URL, json=birth, headers=headers)
            assert r.status == 202 and (await r.json())["accepted"] == [birth["event_id"]]
        store.close()
    assert await count_on_topic(tenants.bootstrap, {birth["event_id"]}) == 1


async def test_records_carry_provenance_and_every_request_is_audited(tenants: Tenants) -> None:
    gw, store = tenants.gateway()
    birth = birth_json(PROVINCE)
    body = json.dumps(birth).encode()
    async with TestClient(TestServer(gw.app())) as c:
        ok = await c.post(URL, data=body, headers={**auth(tenants.a),
                                                   "Content-Type": "application/json"})  # fmt: skip
        assert ok.status == 202
        assert (await c.post(URL, json=birth, headers=auth("stolen"))).status == 401
    headers = await headers_of(tenants.bootstrap, birth["event_id"])
    import hashlib

    assert headers["hub-credential"] == b"hotich-a"
    assert headers["hub-body-sha256"] == hashlib.sha256(body).hexdigest().encode()
    assert datetime.fromisoformat(headers["hub-received-at"].decode()) <= datetime.now(UTC)
    store.close()
    done = subprocess.run(
        [sys.executable, "-m", "hub", "gateway", "audit", "--json"], cwd=REPO, check=True,
        capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HUB_STORE_URL": tenants.store_url,
             "HUB_HOME": str(tenants.tmp_path)},
    )  # fmt: skip
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["credential"], r["status"]) for r in rows] == [("hotich-a", 202), (None, 401)]
    assert rows[0]["event_ids"] == [birth["event_id"]]
    assert rows[0]["body_sha256"] == hashlib.sha256(body).hexdigest()


async def headers_of(bootstrap: str, event_id: str) -> dict[str, bytes]:
    from hub.wire.codec import Codec

    codec = Codec()
    consumer = AIOKafkaConsumer(SourceTopic.BIRTH.value, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)  # fmt: skip
    await consumer.start()
    try:
        while batch := await consumer.getmany(timeout_ms=2000, max_records=10_000):
            for records in batch.values():
                for r in records:
                    try:
                        if str(codec.decode(r.value)[1]["event_id"]) == event_id:
                            return dict(r.headers)
                    except Exception:  # noqa: BLE001 - other tests' poison on the topic
                        continue
    finally:
        await consumer.stop()
    raise AssertionError("record not found")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def test_requests_built_to_cost_memory_get_small_fast_answers(tenants: Tenants) -> None:
    gw, store = tenants.gateway()
    json_headers = {**auth(tenants.a), "Content-Type": "application/json"}
    async with TestClient(TestServer(gw.app())) as c:
        before = rss_bytes()
        empties = b"[" + b",".join([b"{}"] * 330_000) + b"]"  # ~990 KB
        assert 900_000 < len(empties) < 1_000_000
        started = time.monotonic()
        r = await c.post(URL, data=empties, headers=json_headers)
        elapsed = time.monotonic() - started
        answer = await r.read()
        assert r.status == 413 and elapsed < 1.0 and len(answer) < 64 * 1024, (elapsed, answer)

        deep = b"[" * 200_000 + b"]" * 200_000
        r = await c.post(URL, data=deep[:990_000], headers=json_headers)
        assert r.status == 400, await r.text()
        nested = b'{"place_of_birth": ' + b"[" * 40 + b"]" * 40 + b"}"
        r = await c.post(URL, data=nested, headers=json_headers)
        assert r.status == 400 and "nested deeper than 32" in (await r.json())["detail"]

        # 400 invalid events: 422 with at most 50 errors listed and the count of all.
        r = await c.post(URL, json=[{"child_id": "1"}] * 400, headers=auth(tenants.a))
        body = await r.read()
        assert r.status == 422 and len(body) < 64 * 1024
        doc = json.loads(body)
        assert len(doc["errors"]) == 50 and doc["error_count"] > 400

        long_key = {**auth(tenants.a), "Idempotency-Key": "k" * 201}
        assert (await c.post(URL, json=birth_json(PROVINCE), headers=long_key)).status == 400
        grown = rss_bytes() - before
    store.close()
    assert grown < 50 * 1024 * 1024, f"RSS grew by {grown / 1e6:.0f} MB"


async def test_a_flood_is_throttled_with_retry_after(tenants: Tenants) -> None:
    gw, store = tenants.gateway(Limits(max_events=5, rate=5.0))
    async with TestClient(TestServer(gw.app())) as c:
        batch = [birth_json(PROVINCE) for _ in range(5)]
        assert (await c.post(URL, json=batch, headers=auth(tenants.a))).status == 202
        r = await c.post(URL, json=[birth_json(PROVINCE)], headers=auth(tenants.a))
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        too_many = [birth_json(PROVINCE) for _ in range(6)]
        assert (await c.post(URL, json=too_many, headers=auth(tenants.b))).status == 413
        # The other tenant's bucket is its own.
        assert (await c.post(URL, json=batch[:1], headers=auth(tenants.b))).status in (202, 409)
    store.close()


async def test_expired_and_revoked_keys_are_refused(tenants: Tenants) -> None:
    creds = Credentials.load(tenants.keys)
    old = creds.add(tenants.keys, "expired", ["*"], ["*"], expires=date.today() - timedelta(1))
    gw, store = tenants.gateway()
    async with TestClient(TestServer(gw.app())) as c:
        assert (await c.post(URL, json=birth_json(PROVINCE), headers=auth(old))).status == 401
        ok = await c.post(URL, json=birth_json(PROVINCE), headers=auth(tenants.b))
        assert ok.status == 202
        assert Credentials.load(tenants.keys).revoke(tenants.keys, "hotich-b")
        gw.reload_credentials()  # what SIGHUP does
        r = await c.post(URL, json=birth_json(PROVINCE), headers=auth(tenants.b))
        assert r.status == 401
    store.close()
    assert tenants.keys.stat().st_mode & 0o077 == 0, "the key file is readable by its owner only"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Nguyễn Văn\x00An", "control_character"),
        ("\u200b\u200b\u200b", "control_character"),
        ("Trần \u202eThị", "control_character"),
        ("\ufeffLê Hoa", "control_character"),
        ("!!!", "invisible_name"),
        ("Nguyễn " * 30, "field_too_long"),
    ],
)
async def test_hostile_names_are_a_422_naming_the_field_and_reason(
    tenants: Tenants, name: str, reason: str
) -> None:
    """The gateway's door of the one hygiene rule (JSON escapes reach the models intact)."""
    gw, store = tenants.gateway()
    birth = {**birth_json(PROVINCE), "child_full_name": name}
    async with TestClient(TestServer(gw.app())) as c:
        r = await c.post(URL, json=birth, headers=auth(tenants.a))
        assert r.status == 422, await r.text()
        errors = (await r.json())["errors"]
        assert errors[0]["field"] == "child_full_name" and errors[0]["reason"] == reason
    store.close()
    assert await count_on_topic(tenants.bootstrap, {birth["event_id"]}) == 0


def hostile_strings(seed: int, n: int) -> list[str]:
    """Strings an adversary or an old export would send: control and format characters,
    surrogates, overlong text, decomposed Vietnamese, mixed scripts (seeded, reproducible)."""
    import random
    import unicodedata

    rng = random.Random(seed)
    bad = ["\x00", "\x07", "\x1b", "\u202e", "\u200b", "\ufeff", "\u2066", "\x7f", "\u00ad"]
    base = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Hoa", "Phạm Quốc Việt"]
    out = []
    for i in range(n):
        name = rng.choice(base)
        kind = i % 5
        if kind == 0:
            cut = rng.randrange(len(name))
            out.append(name[:cut] + rng.choice(bad) + name[cut:])
        elif kind == 1:
            out.append("".join(rng.choice([*bad, " "]) for _ in range(rng.randrange(1, 8))))
        elif kind == 2:
            out.append((name + " ") * rng.randrange(30, 300))
        elif kind == 3:
            out.append(unicodedata.normalize("NFD", name))
        else:
            out.append(name + rng.choice(["Иван", "王", "محمد", "😀"]))
    return out


STRING_FIELDS = ["child_full_name", "place_of_birth", "registration_number", "source_system"]


async def test_hostile_strings_in_every_birth_string_field_are_produced_once_or_refused(
    tenants: Tenants,
) -> None:
    """The gateway's door for a stream of hostile strings: every request is 202 and its event
    produced exactly once and clean, or refused with a 4xx naming a specific reason."""
    import unicodedata

    gw, store = tenants.gateway()
    accepted: dict[str, str] = {}
    reasons: set[str] = set()
    async with TestClient(TestServer(gw.app())) as c:
        for i, value in enumerate(hostile_strings(11, 120)):
            field = STRING_FIELDS[i % len(STRING_FIELDS)]
            birth = {**birth_json(PROVINCE), field: value}
            r = await c.post(URL, json=birth, headers=auth(tenants.a))
            body = await r.json()
            if r.status == 202:
                accepted[birth["event_id"]] = field
                continue
            assert r.status in (400, 422), (r.status, body)
            reason = body["errors"][0]["reason"] if r.status == 422 else "malformed_json"
            reasons.add(reason)
            if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
                assert reason == "control_character", (value, body)
    store.close()
    assert {"control_character", "field_too_long"} <= reasons
    assert accepted, "clean text (NFD, mixed scripts) is accepted, normalised"
    assert await count_on_topic(tenants.bootstrap, set(accepted)) == len(accepted)
