"""The HTTP ingest gateway against the real broker: accepted events reach the source topic
once; every error is a precise problem document."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer

from connectors.ingest.credentials import Credentials
from connectors.ingest.gateway import Gateway, openapi_document
from hub.domain.topics import SourceTopic
from hub.settings import Settings
from hub.sim.traffic import Traffic
from hub.store.ingest import IngestLedger
from hub.wire.codec import Codec

pytestmark = pytest.mark.integration
TRAFFIC = Traffic(
    Codec(), seed=random.randrange(10**9), provinces=2, population=200, now=datetime.now(UTC)
)
PROVINCE = TRAFFIC.province_codes[0]
OTHER = TRAFFIC.province_codes[1]


def birth_json(province: str) -> dict[str, Any]:
    while True:
        event = TRAFFIC.event(SourceTopic.BIRTH)
        if event.province_code == province or (
            TRAFFIC.communes.get(province) and event.commune_code in TRAFFIC.communes[province]
        ):
            break
    return json.loads(event.model_dump_json())


@pytest.fixture
async def client(
    kafka_broker: Settings, tmp_path: Path, ingest_ledger: IngestLedger
) -> AsyncIterator[tuple[TestClient, str]]:
    path = tmp_path / "keys.json"
    creds = Credentials.load(path)
    key = creds.add(path, "hotich-test", ["civil.birth"], [PROVINCE])
    gateway = Gateway(kafka_broker.kafka_bootstrap, Credentials.load(path), max_body=20_000,
                      ledger=ingest_ledger)  # fmt: skip
    async with TestClient(TestServer(gateway.app())) as c:
        yield c, key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def count_on_topic(bootstrap: str, event_ids: set[str]) -> int:
    codec = Codec()
    consumer = AIOKafkaConsumer(SourceTopic.BIRTH.value, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)  # fmt: skip
    await consumer.start()
    found = 0
    try:
        while batch := await consumer.getmany(timeout_ms=2000, max_records=10_000):
            for records in batch.values():
                for r in records:
                    try:
                        found += str(codec.decode(r.value)[1]["event_id"]) in event_ids
                    except Exception:  # noqa: BLE001 - other tests' poison on the topic
                        continue
    finally:
        await consumer.stop()
    return found


async def test_accepted_events_reach_kafka_once_even_when_retried(
    client: tuple[TestClient, str], kafka_broker: Settings
) -> None:
    c, key = client
    events = [birth_json(PROVINCE) for _ in range(3)]
    headers = {**auth(key), "Idempotency-Key": uuid.uuid4().hex}
    first = await c.post("/v1/events/civil.birth", json=events, headers=headers)
    assert first.status == 202, await first.text()
    ids = set((await first.json())["accepted"])
    assert ids == {e["event_id"] for e in events}
    again = await c.post("/v1/events/civil.birth", json=events, headers=headers)
    assert again.status == 202
    single = await c.post("/v1/events/civil.birth", json=events[0], headers=auth(key))
    assert single.status == 202
    assert (await single.json())["accepted"] == [events[0]["event_id"]]
    assert await count_on_topic(kafka_broker.kafka_bootstrap, ids) == 3, (
        "the retry with the same Idempotency-Key produced nothing; neither did the re-send "
        "without it of an event id this key already produced (the ledger knows it)"
    )


async def test_errors_are_precise_problem_documents(client: tuple[TestClient, str]) -> None:
    c, key = client
    url = "/v1/events/civil.birth"
    good = birth_json(PROVINCE)
    cases = [
        (await c.post(url, json=good), 401),
        (await c.post(url, json=good, headers=auth("wrong")), 401),
        (await c.post("/v1/events/health.encounter", json=good, headers=auth(key)), 403),
        (await c.post(url, json=birth_json(OTHER), headers=auth(key)), 403),
        (await c.post(url, data="<xml/>", headers={**auth(key), "Content-Type": "text/xml"}),
         415),
        (await c.post(url, data="{not json", headers={**auth(key),
                                                       "Content-Type": "application/json"}),
         400),
        (await c.post(url, json=[good] * 200, headers=auth(key)), 413),
    ]  # fmt: skip
    for response, status in cases:
        assert response.status == status, (status, await response.text())
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert body["status"] == status and body["detail"]
    bad = {**good, "child_id": "12345", "occurred_at": "2999-01-01T00:00:00Z"}
    invalid = await c.post(url, json=[good, bad], headers=auth(key))
    assert invalid.status == 422
    errors = (await invalid.json())["errors"]
    assert {e["index"] for e in errors} == {1}
    assert any(e["reason"] in {"invalid_personal_id", "date_in_future"} for e in errors)


async def test_kafka_unreachable_is_503_and_nothing_accepted(
    tmp_path: Path, ingest_ledger: IngestLedger
) -> None:
    path = tmp_path / "keys.json"
    key = Credentials.load(path).add(path, "x", ["*"], ["*"])
    gateway = Gateway("127.0.0.1:1", Credentials.load(path), max_body=20_000, ledger=ingest_ledger)
    async with TestClient(TestServer(gateway.app())) as c:
        response = await c.post("/v1/events/civil.birth", json=birth_json(PROVINCE),
                                headers=auth(key))  # fmt: skip
        assert response.status == 503
        assert "nothing was accepted" in (await response.json())["detail"]
        assert (await c.get("/readyz")).status == 503
        assert (await c.get("/healthz")).status == 200


def test_the_openapi_document_covers_every_source_and_fhir() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.")
    assert "/v1/events/civil.birth" in doc["paths"]
    assert "BirthRegistration" in doc["components"]["schemas"]
    assert len([p for p in doc["paths"] if p.startswith("/v1/events/")]) == len(SourceTopic)
    assert "422" in doc["paths"]["/v1/fhir"]["post"]["responses"]
