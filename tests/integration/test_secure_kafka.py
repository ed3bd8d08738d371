"""The secure broker (issue 12): nobody without credentials, every principal exactly its role.

Run against the broker `hub kafka start --secure` starts (SASL_SSL with SCRAM, StandardAuthorizer
with nothing allowed that no ACL allows); users made with `hub kafka users add`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from hub.domain.records import AckOutcome, Agency, AgencyTask, DeadLetter
from hub.domain.topics import (
    POPULATION_TOPIC,
    AgencyTopic,
    SourceTopic,
    UnifiedTopic,
    ack_topic_of,
    dead_letter_topic,
)
from hub.kafka.admin import broker_answers
from hub.kafka.client import KafkaConnection, as_connection, options
from hub.settings import KafkaSecurity
from hub.sim.simulator import produce
from hub.wire.codec import Codec
from tests.conftest import SECURE_ENV, Broker, run_hub
from tests.integration.test_interconnection import answer, tasks_of
from tests.integration.test_pipeline import read_all
from tests.integration.workers import WorkerProcess, traffic_for_new_group

pytestmark = pytest.mark.integration


async def can_read(kafka: KafkaConnection, topic: str, group: str | None = None) -> bool:
    """Whether ``kafka``'s principal may fetch from ``topic`` (one message is there)."""
    consumer = AIOKafkaConsumer(**options(kafka), group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(4)])
        if group is None:
            await consumer.seek_to_beginning()
        batch = await consumer.getmany(timeout_ms=5000)
        return any(batch.values())
    except KafkaError:
        return False
    finally:
        await consumer.stop()


async def can_write(kafka: KafkaConnection, topic: str) -> bool:
    producer = AIOKafkaProducer(**options(kafka), request_timeout_ms=8000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"probe", key=b"probe")
        return True
    except KafkaError:
        return False
    finally:
        await producer.stop()


async def seed(admin: KafkaConnection, topics: list[str]) -> None:
    """One message on every partition of each topic, so a permitted read has something."""
    producer = AIOKafkaProducer(**options(admin))
    await producer.start()
    try:
        for topic in topics:
            for p in range(4):
                await producer.send_and_wait(topic, b"seed", key=b"seed", partition=p)
    finally:
        await producer.stop()


async def test_no_credentials_or_a_wrong_password_gets_nothing(secure_broker: Broker) -> None:
    admin = as_connection(secure_broker.kafka)
    assert await broker_answers(admin), "the admin does get metadata (the probe works)"
    assert not await broker_answers(admin.bootstrap), "PLAINTEXT: no metadata"
    tls_only = KafkaConnection(admin.bootstrap, KafkaSecurity.SSL, ca_file=admin.ca_file)
    assert not await broker_answers(tls_only), "TLS without SASL: no metadata"
    assert not await broker_answers(replace(admin, password="wrong-" + admin.password))
    assert not await broker_answers(replace(admin, username="nobody"))


async def test_the_gateway_principal_writes_sources_and_reads_nothing(
    secure_broker: Broker,
) -> None:
    admin = as_connection(secure_broker.kafka)
    await seed(admin, [SourceTopic.ENCOUNTER.value])
    gateway = as_connection(secure_broker.connection("gateway"))
    assert await can_write(gateway, SourceTopic.ENCOUNTER.value)
    assert not await can_read(gateway, SourceTopic.ENCOUNTER.value)
    assert not await can_write(gateway, UnifiedTopic.HEALTH.value)
    assert not await can_write(gateway, ack_topic_of(Agency.POLICE.value))
    assert await can_read(admin, SourceTopic.ENCOUNTER.value), "the probe can succeed"


async def test_an_agency_reads_its_tasks_and_answers_only_on_its_own_topic(
    secure_broker: Broker,
) -> None:
    admin = as_connection(secure_broker.kafka)
    task_topic = AgencyTopic.RESIDENCE.value
    others = [SourceTopic.BIRTH.value, UnifiedTopic.CIVIL_STATUS.value, POPULATION_TOPIC,
              AgencyTopic.HEALTH_INSURANCE.value]  # fmt: skip
    await seed(admin, [task_topic, *others])
    police = as_connection(secure_broker.connection("agency:POLICE"))
    assert await can_read(police, task_topic, group=f"agency-police-{uuid.uuid4().hex[:6]}")
    for topic in others:
        assert not await can_read(police, topic), f"police read {topic}"
    assert not await can_read(police, task_topic, group=f"someone-else-{uuid.uuid4().hex[:6]}")
    assert await can_write(police, ack_topic_of(Agency.POLICE.value))
    assert not await can_write(police, ack_topic_of(Agency.SOCIAL_INSURANCE.value))
    assert not await can_write(police, AgencyTopic.ACK.value), "not the shared legacy topic"
    assert not await can_write(police, SourceTopic.BIRTH.value)


def test_users_list_shows_exactly_the_acls_of_each_role(secure_broker: Broker) -> None:
    secure_broker.client_env("agency:POLICE")
    secure_broker.client_env("gateway")
    listed = json.loads(run_hub("kafka", "users", "list", "--json", env=SECURE_ENV).stdout)
    police = next(n for n in listed["users"] if n.startswith("agency-police-"))
    got = {(a["resource"], a["pattern"], a["name"], a["operation"]) for a in listed["acls"][police]}
    assert got == {
        ("TOPIC", "LITERAL", AgencyTopic.RESIDENCE.value, "READ"),
        ("TOPIC", "LITERAL", ack_topic_of(Agency.POLICE.value), "WRITE"),
        ("GROUP", "PREFIXED", "agency-police", "READ"),
        ("GROUP", "PREFIXED", "agency-police", "DESCRIBE"),
    }
    assert all(a["permission"] == "ALLOW" for acls in listed["acls"].values() for a in acls)
    assert "admin" in listed["users"]


def test_a_removed_user_can_no_longer_connect(secure_broker: Broker) -> None:
    name = f"tmp-{uuid.uuid4().hex[:6]}"
    run_hub("kafka", "users", "add", name, "--role", "central", env=SECURE_ENV)
    admin = as_connection(secure_broker.kafka)
    password = (Path(SECURE_ENV["HUB_HOME"]) / "kafka/users" / f"{name}.password").read_text()
    user = replace(admin, username=name, password=password.strip())
    assert asyncio.run(broker_answers(user))
    run_hub("kafka", "users", "remove", name, env=SECURE_ENV)
    assert not asyncio.run(broker_answers(user))
    listed = json.loads(run_hub("kafka", "users", "list", "--json", env=SECURE_ENV).stdout)
    assert name not in listed["users"] and name not in listed["acls"]


async def test_a_social_insurance_task_answered_on_the_police_topic_stays_open(
    secure_broker: Broker, tmp_path: Path
) -> None:
    codec = Codec()
    admin = secure_broker.kafka
    group, traffic = await traffic_for_new_group(admin, "secure-cases", codec, 2, 300)
    births = [traffic.event(SourceTopic.BIRTH) for _ in range(40)]
    await produce(admin, (traffic.message(e) for e in births))
    worker = WorkerProcess(tmp_path / "w", group, secure_broker.client_env("worker", group))
    worker.start()
    try:
        tasks = await tasks_of(admin, codec, {e.event_id for e in births}, 10)
        card = next(t for t in tasks.values() if t.agency is Agency.SOCIAL_INSURANCE)
        residence: AgencyTask = next(t for t in tasks.values() if t.agency is Agency.POLICE)
        police = secure_broker.connection("agency:POLICE")
        # The police's own principal answers its task, and forges one for social insurance.
        await produce(police, [answer(residence, AckOutcome.DONE),
                               answer(card, AckOutcome.DONE,
                                      topic=ack_topic_of(Agency.POLICE.value))])  # fmt: skip
        deadline = time.monotonic() + 90
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            rows = worker.query("SELECT task_id, state FROM case_steps WHERE task_id IN "
                                f"('{card.task_id}', '{residence.task_id}')")  # fmt: skip
            state = {str(t): s for t, s in rows}
            if state.get(residence.task_id) == "DONE":
                break
            await asyncio.sleep(1)
        assert state.get(residence.task_id) == "DONE", "the genuine answer closed its step"
        assert state.get(card.task_id) == "PENDING", "the forged answer closed nothing"
        letters = [DeadLetter.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
                   for r in await read_all(admin, [dead_letter_topic(
                       ack_topic_of(Agency.POLICE.value))], idle_ms=1000)]  # fmt: skip
        assert any(d.reason == "ack_wrong_agency" and card.task_id in d.detail for d in letters)
    finally:
        worker.stop()
