"""Agency delivery against local HTTP endpoints that fail, time out and recover (real broker)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.delivery.signing import new_secret
from connectors.delivery.webhook import DeliveryWorker, Endpoint, Endpoints, RetryPolicy
from hub.domain.enums import BeneficiaryCategory, BirthProcedure, DeathProcedure
from hub.domain.events import BirthInterconnection, DeathInterconnection
from hub.domain.records import Agency, AgencyAcknowledgement, AgencyTask, DeadLetter
from hub.domain.topics import AckTopic, AgencyTopic, SourceTopic, dead_letter_topic
from hub.domain.workflows import expand, topics_of
from hub.kafka.admin import end_offsets, start_group_at_end
from hub.settings import Settings
from hub.sim.traffic import Traffic
from hub.tls import client_context, issue_certificate, new_authority, peer_subject, server_context
from hub.wire.codec import Codec
from tests.integration.test_pipeline import read_all
from tests.integration.workers import free_port

pytestmark = pytest.mark.integration

SECRETS = {"police-k1": new_secret(), "bhxh-k1": new_secret(), "ldtbxh-k1": new_secret()}
ACK_TOPICS = [t.value for t in AckTopic]  # each agency acknowledges on its own topic
POLICY = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.2, timeout_s=0.5)


class Agencies:
    """Three agency endpoints: police fails twice then answers, insurance is slow once, social
    affairs is down. Every request is checked with the Standard Webhooks reference verifier."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.bodies: dict[str, bytes] = {}
        self.bad_signatures: list[str] = []
        self.captured: dict[str, Any] = {}

    def check(self, request: web.Request, body: bytes, key_id: str) -> str:
        try:
            Webhook(SECRETS[key_id]).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures.append(request.path)
        task_id = request.headers["webhook-id"]
        assert request.headers["Idempotency-Key"] == task_id
        self.bodies[task_id] = body
        self.captured[request.path] = (dict(request.headers), body)
        self.attempts[(request.path, task_id)] += 1
        return task_id

    async def police(self, request: web.Request) -> web.Response:
        task_id = self.check(request, await request.read(), "police-k1")
        if task_id == self.refuse:
            return web.json_response({"error": "unknown commune"}, status=422)
        if self.attempts[(request.path, task_id)] <= 2:
            return web.Response(status=503, text="maintenance")
        return web.json_response({"reference": f"CA-{task_id[-6:]}"})

    async def insurance(self, request: web.Request) -> web.Response:
        task_id = self.check(request, await request.read(), "bhxh-k1")
        if self.attempts[(request.path, task_id)] == 1:
            await asyncio.sleep(POLICY.timeout_s * 3)  # the first attempt times out
        return web.Response(status=204)

    async def social(self, request: web.Request) -> web.Response:
        self.check(request, await request.read(), "ldtbxh-k1")
        return web.Response(status=500, text="database down")


def chosen(traffic: Traffic, topic: SourceTopic) -> Any:
    """A live registration whose applicant chose the whole birth group, or residence removal
    and the funeral allowance of a social-protection beneficiary (the commune pays it)."""
    event = traffic.event(topic)
    applicant = next(p for p in traffic.people if p.date_of_birth.year < 2000).personal_id
    receipt = {"dossier_code": "LT-1", "applicant_id": applicant,
               "received_at": datetime.now(UTC) - timedelta(hours=1)}  # fmt: skip
    if topic is SourceTopic.BIRTH:
        ic: Any = BirthInterconnection(**receipt, procedures=list(BirthProcedure))
    else:
        ic = DeathInterconnection(
            **receipt, procedures=[DeathProcedure.RESIDENCE_REMOVAL,
                                   DeathProcedure.FUNERAL_ALLOWANCE],
            beneficiary_category=BeneficiaryCategory.SOCIAL_PROTECTION)  # fmt: skip
    return event.model_copy(update={"interconnection": ic})


async def produce_tasks(bootstrap: str, tasks: list[tuple[AgencyTopic, AgencyTask]]) -> None:
    codec = Codec()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, task in tasks:
            await producer.send(topic.value, key=str(task.case_id).encode(),
                                value=codec.encode(AgencyTask.SCHEMA, task.to_avro()))  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()


async def test_tasks_are_delivered_signed_retried_acknowledged_or_dead_lettered(
    kafka_broker: Settings,
) -> None:
    bootstrap = kafka_broker.kafka_bootstrap
    codec = Codec()
    traffic = Traffic(codec, seed=11, provinces=2, population=200)
    now = datetime.now(UTC)
    tasks = []
    for event in [*(chosen(traffic, SourceTopic.BIRTH) for _ in range(6)),
                  *(chosen(traffic, SourceTopic.DEATH) for _ in range(4))]:  # fmt: skip
        tasks += expand(event, "01", "00004", now)[0]
    police = [t for topic, t in tasks if topic is AgencyTopic.RESIDENCE]
    insurance = [t for topic, t in tasks if topic is AgencyTopic.HEALTH_INSURANCE]
    social = [t for topic, t in tasks if topic is AgencyTopic.COMMUNE_SOCIAL_PROTECTION]
    assert len(police) == 10 and len(insurance) == 6 and len(social) == 4
    refused = police[0].task_id

    agencies = Agencies(refuse=refused)
    app = web.Application()
    app.router.add_post("/police", agencies.police)
    app.router.add_post("/insurance", agencies.insurance)
    app.router.add_post("/social", agencies.social)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    endpoints = Endpoints(agencies={
        "POLICE": Endpoint(url=f"{base}/police", key_id="police-k1",
                           secret=SECRETS["police-k1"]),
        "SOCIAL_INSURANCE": Endpoint(url=f"{base}/insurance", key_id="bhxh-k1",
                                     secret=SECRETS["bhxh-k1"], concurrency=2),
        "COMMUNE_PEOPLES_COMMITTEE": Endpoint(url=f"{base}/social", key_id="ldtbxh-k1",
                                              secret=SECRETS["ldtbxh-k1"]),
    })  # type: ignore[arg-type]  # fmt: skip

    group = f"deliver-{uuid.uuid4().hex[:8]}"
    for agency in endpoints.agencies:
        await start_group_at_end(bootstrap, f"{group}-{agency.value.lower()}", topics_of(agency))
    watched = [
        *(t.value for t in AckTopic),
        *(dead_letter_topic(t.value) for t in AgencyTopic if t is not AgencyTopic.ACK),
    ]
    before = await end_offsets(bootstrap, watched)
    await produce_tasks(bootstrap, tasks)

    worker = DeliveryWorker(bootstrap, group, endpoints, POLICY, "test", seed=1)
    stop = asyncio.Event()
    await worker.start()
    running = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 60
        expected_calls = 3 * (len(police) - 1) + 1 + 2 * len(insurance) + 3 * len(social)
        while sum(agencies.attempts.values()) < expected_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # acks and dead letters are sent right after the last answer
    finally:
        stop.set()
        await running
        await worker.stop()
        await runner.cleanup()

    assert agencies.bad_signatures == []
    per_task: dict[str, int] = defaultdict(int)
    for (_, task_id), n in agencies.attempts.items():
        per_task[task_id] += n
    assert per_task[refused] == 1, "a definite refusal is not retried"
    assert all(per_task[t.task_id] == 3 for t in police[1:]), "two 503s, then delivered"
    assert all(per_task[t.task_id] == 2 for t in insurance), "one timeout, then delivered"
    assert all(per_task[t.task_id] == 3 for t in social), "the whole retry budget"
    for t in [*police, *insurance, *social]:
        sent = AgencyTask.model_validate_json(agencies.bodies[t.task_id])
        assert sent.fields == t.fields and sent.case_id == t.case_id

    records = [
        r
        for r in await read_all(bootstrap, watched, idle_ms=1500)
        if r.offset >= before.get((r.topic, r.partition), 0)
    ]  # type: ignore[attr-defined]
    acks: dict[str, AgencyAcknowledgement] = {}
    letters: dict[str, DeadLetter] = {}
    for r in records:
        _, data = codec.decode(r.value)  # type: ignore[attr-defined]
        if r.topic in ACK_TOPICS:  # type: ignore[attr-defined]
            ack = AgencyAcknowledgement.model_validate(data)
            acks[ack.task_id] = ack
        else:
            letter = DeadLetter.model_validate(data)
            task = AgencyTask.model_validate(codec.decode(letter.original_value or b"")[1])
            letters[task.task_id] = letter
    assert set(acks) == {t.task_id for t in [*police[1:], *insurance]}
    assert all(acks[t.task_id].reference == f"CA-{t.task_id[-6:]}" for t in police[1:])
    assert {k: v.reason for k, v in letters.items()} == {
        refused: "delivery_refused",
        **{t.task_id: "delivery_failed" for t in social},
    }
    assert letters[refused].original_topic == AgencyTopic.RESIDENCE.value
    assert "422" in letters[refused].detail

    # The reference verifier turns away the same request with its id swapped for another task's.
    headers, body = agencies.captured["/police"]
    Webhook(SECRETS["police-k1"]).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRETS["police-k1"]).verify(body, {**headers, "webhook-id": refused})


async def test_redirects_are_never_followed_nor_taken_as_acknowledgements(
    kafka_broker: Settings,
) -> None:
    """A 307 would re-send the signed task (child's id and name) to another host, whose 200
    would close the case; a 302 would turn it into a bodiless GET. Both are dead-lettered."""
    bootstrap = kafka_broker.kafka_bootstrap
    codec = Codec()
    traffic = Traffic(codec, seed=uuid.uuid4().int % 10**6, provinces=2, population=100)
    births = [chosen(traffic, SourceTopic.BIRTH) for _ in range(2)]
    tasks = [pair for b in births for pair in expand(b, "01", "00004", datetime.now(UTC))[0]]
    police = [t for topic, t in tasks if topic is AgencyTopic.RESIDENCE]
    elsewhere: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        task_id = request.headers["webhook-id"]
        status = 307 if task_id == police[0].task_id else 302
        return web.Response(status=status, headers={"Location": f"{base}/attacker"})

    async def attacker(request: web.Request) -> web.Response:
        elsewhere.append(request.method)
        return web.json_response({"reference": "stolen"})

    app = web.Application()
    app.router.add_post("/police", redirect)
    app.router.add_route("*", "/attacker", attacker)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    endpoints = Endpoints(agencies={"POLICE": Endpoint(
        url=f"{base}/police", secret=SECRETS["police-k1"])})  # type: ignore[dict-item]  # fmt: skip
    group = f"redirect-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(bootstrap, f"{group}-police", topics_of(Agency.POLICE))
    watched = [*ACK_TOPICS, dead_letter_topic(AgencyTopic.RESIDENCE.value)]
    before = await end_offsets(bootstrap, watched)
    await produce_tasks(bootstrap, [(AgencyTopic.RESIDENCE, t) for t in police])
    worker = DeliveryWorker(bootstrap, group, endpoints, POLICY, "test", seed=1)
    stop = asyncio.Event()
    await worker.start()
    running = asyncio.create_task(worker.run(stop))
    try:
        letters: dict[str, DeadLetter] = {}
        acked: set[str] = set()
        deadline = time.monotonic() + 60
        while len(letters) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            for r in await read_all(bootstrap, watched, idle_ms=500):
                if r.offset < before.get((r.topic, r.partition), 0):  # type: ignore[attr-defined]
                    continue
                _, data = codec.decode(r.value)  # type: ignore[attr-defined]
                if r.topic in ACK_TOPICS:  # type: ignore[attr-defined]
                    acked.add(AgencyAcknowledgement.model_validate(data).task_id)
                else:
                    letter = DeadLetter.model_validate(data)
                    task = AgencyTask.model_validate(codec.decode(letter.original_value or b"")[1])
                    letters[task.task_id] = letter
    finally:
        stop.set()
        await running
        await worker.stop()
        await runner.cleanup()
    ids = {t.task_id for t in police}
    assert elsewhere == [], "nothing reached the host the redirect named"
    assert not (acked & ids), "a redirect is never an acknowledgement"
    assert set(letters) == ids
    assert {letters[t].reason for t in ids} == {"delivery_redirected"}
    assert "307" in letters[police[0].task_id].detail and "302" in letters[police[1].task_id].detail


async def test_an_agency_requiring_a_client_certificate_gets_the_hubs(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    """An agency endpoint on HTTPS with mutual TLS: `hub deliver`'s client certificate
    (HUB_DELIVERY_CLIENT_CERT/KEY, the agency's CA in HUB_DELIVERY_CA_FILE) opens it; a
    delivery worker without one is refused at the handshake and acknowledges nothing."""
    bootstrap = kafka_broker.kafka_bootstrap
    codec = Codec()
    ca = new_authority(tmp_path / "ca", "Agency test CA")
    server = issue_certificate(ca, tmp_path / "police", "CN=police", hosts=["127.0.0.1"],
                               server=True)  # fmt: skip
    hub_cert = issue_certificate(ca, tmp_path / "hub", "CN=lienthong-hub", client=True)
    seen: list[str] = []

    async def police(request: web.Request) -> web.Response:
        transport = request.transport
        subject = peer_subject(transport.get_extra_info("ssl_object") if transport else None)
        seen.append(subject.rfc4514_string() if subject else "")
        return web.json_response({"reference": "CA-mtls"})

    app = web.Application()
    app.router.add_post("/police", police)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port,
                      ssl_context=server_context(server.cert_file, server.key_file,
                                                 ca.cert_file)).start()  # fmt: skip
    endpoints = Endpoints(agencies={"POLICE": Endpoint(
        url=f"https://127.0.0.1:{port}/police", secret=SECRETS["police-k1"])})  # type: ignore[dict-item]  # fmt: skip
    traffic = Traffic(codec, seed=uuid.uuid4().int % 10**6, provinces=2, population=100)
    births = [chosen(traffic, SourceTopic.BIRTH) for _ in range(2)]
    tasks = [pair for b in births for pair in expand(b, "01", "00004", datetime.now(UTC))[0]]
    mine = [t for topic, t in tasks if topic is AgencyTopic.RESIDENCE]

    async def deliver(tls: Any, want: int) -> set[str]:
        group = f"mtls-{uuid.uuid4().hex[:8]}"
        await start_group_at_end(bootstrap, f"{group}-police", topics_of(Agency.POLICE))
        before = await end_offsets(bootstrap, ACK_TOPICS)
        await produce_tasks(bootstrap, [(AgencyTopic.RESIDENCE, t) for t in mine])
        worker = DeliveryWorker(bootstrap, group, endpoints, POLICY, "test", seed=1, tls=tls)
        stop = asyncio.Event()
        await worker.start()
        running = asyncio.create_task(worker.run(stop))
        acked: set[str] = set()
        try:
            deadline = time.monotonic() + (30 if want else 8)
            while time.monotonic() < deadline and len(acked) < max(want, 1):
                await asyncio.sleep(0.5)
                for r in await read_all(bootstrap, ACK_TOPICS, idle_ms=500):
                    if r.offset >= before.get((r.topic, r.partition), 0):  # type: ignore[attr-defined]
                        ack = AgencyAcknowledgement.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
                        acked.add(ack.task_id)
        finally:
            stop.set()
            await running
            await worker.stop()
        return acked & {t.task_id for t in mine}

    try:
        without = await deliver(client_context(ca.cert_file), 0)
        assert without == set() and seen == [], "no client certificate: no delivery"
        with_cert = await deliver(
            client_context(ca.cert_file, hub_cert.cert_file, hub_cert.key_file), len(mine)
        )
        assert with_cert == {t.task_id for t in mine}
        assert set(seen) == {"CN=lienthong-hub"}
    finally:
        await runner.cleanup()
