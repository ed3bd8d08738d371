"""`hub dlq list` and `hub dlq replay` as an operator runs them after a fix: the dead letters
grouped by reason, and their original messages sent back once — only those asked for."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from hub.domain.records import DeadLetter
from hub.domain.topics import SourceTopic, dead_letter_topic
from hub.kafka.admin import topic_partitions
from hub.kafka.client import options
from hub.settings import Settings
from hub.sim.traffic import Message
from hub.wire.codec import Codec
from tests.conftest import run_hub
from tests.integration.test_pipeline import read_all
from tests.integration.workers import WorkerProcess, traffic_for_new_group

pytestmark = pytest.mark.integration
BIRTH = SourceTopic.BIRTH.value
HEADER = ("hub-test-origin", b"civil-registry-7")


async def send(bootstrap: str, messages: list[Message]) -> None:
    producer = AIOKafkaProducer(**options(bootstrap), acks="all")
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(m.topic, key=m.key, value=m.value, headers=[HEADER])
    finally:
        await producer.stop()


async def letters_of(codec: Codec, bootstrap: str, wanted: list[Message]) -> list[DeadLetter]:
    """The dead letters of ``wanted`` (matched on their original bytes), once all are in."""
    values = {m.value for m in wanted}
    found: list[DeadLetter] = []
    for _ in range(120):
        found = []
        for r in await read_all(bootstrap, [dead_letter_topic(BIRTH)], 1000):
            letter = DeadLetter.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
            if letter.original_value in values:
                found.append(letter)
        if len(found) >= len(wanted):
            break
        await asyncio.sleep(1)
    assert sorted(f.original_value or b"" for f in found) == sorted(values)
    return found


async def ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**options(bootstrap), group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, [BIRTH])
        assert tps, f"{BIRTH} has partitions"
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def written_since(bootstrap: str, since: dict[TopicPartition, int]) -> list[ConsumerRecord]:
    """What the source topic received after ``since`` (its end offsets then)."""
    now = await ends(bootstrap)
    todo = {tp for tp in now if now[tp] > since.get(tp, 0)}
    if not todo:
        return []
    consumer = AIOKafkaConsumer(**options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign(list(now))
        for tp in now:
            consumer.seek(tp, since.get(tp, 0))
        while todo:
            for tp, got in (await consumer.getmany(*todo, timeout_ms=2000)).items():
                records.extend(r for r in got if r.offset < now[tp])
                if got and got[-1].offset + 1 >= now[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return records


async def test_dead_letters_are_listed_and_replayed_once_since_a_time_and_by_reason(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "dlq", codec, 3, 300)
    early = traffic.poison("unknown_admin_unit")
    later = [traffic.poison("invalid_personal_id"), traffic.poison("date_in_future")]
    worker = WorkerProcess(tmp_path / "w", group)
    worker.start()
    try:
        await send(bootstrap, [early])
        first = await letters_of(codec, bootstrap, [early])
        since = datetime.now(UTC)
        await send(bootstrap, later)
        letters = await letters_of(codec, bootstrap, later)
    finally:
        worker.stop()
    assert all(letter.failed_at >= since for letter in letters)
    env = {"HUB_HOME": str(tmp_path / "operator")}  # the replay ledger lives here

    listed = json.loads(run_hub("dlq", "list", "--json", env=env).stdout)
    groups = {(g["topic"], g["stage"], g["reason"]): g["count"] for g in listed}
    ours = [(BIRTH, letter.stage.value, letter.reason) for letter in [*first, *letters]]
    assert {reason for _, _, reason in ours} == {
        "unknown_admin_unit", "invalid_personal_id", "date_in_future"}  # fmt: skip
    assert all(groups.get(key, 0) >= 1 for key in ours), (ours, groups)

    at = since.isoformat()
    before = await ends(bootstrap)
    dry = run_hub("dlq", "replay", "--topic", BIRTH, "--since", at, "--reason",
                  "invalid_personal_id", "--dry-run", env=env)  # fmt: skip
    assert dry.stdout.startswith("would replay 1 dead letter(s)"), dry.stdout
    assert await written_since(bootstrap, before) == [], "a dry run sends nothing"

    done = run_hub("dlq", "replay", "--topic", BIRTH, "--since", at, env=env)
    assert done.stdout.strip() == f"replayed 2 dead letter(s) into {BIRTH}", done.stdout
    sent = await written_since(bootstrap, before)
    assert sorted((r.key, r.value) for r in sent) == sorted((m.key, m.value) for m in later)
    for record in sent:  # the original headers, and where the replay came from
        headers = dict(record.headers)
        assert headers[HEADER[0]] == HEADER[1]
        assert headers["hub-replayed-from"].decode().startswith(f"{dead_letter_topic(BIRTH)}:")

    again = run_hub("dlq", "replay", "--topic", BIRTH, "--since", at, env=env)
    assert again.stdout.startswith("nothing to replay"), again.stdout
    assert len(await written_since(bootstrap, before)) == 2, "each dead letter replayed once"

    bad = run_hub("dlq", "replay", "--topic", BIRTH, "--since", "yesterday", env=env, check=False)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
