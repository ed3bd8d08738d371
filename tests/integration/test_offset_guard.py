"""The offset guard reads skipped offsets back from the real broker, in partition order."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from hub.domain.topics import TopicSpec
from hub.kafka.admin import commit_offsets, committed_offsets, create_topics
from hub.kafka.offset_guard import OffsetGuard
from hub.settings import Settings

pytestmark = pytest.mark.integration


async def test_skipped_offsets_come_back_with_their_keys_and_values_in_order(
    kafka_broker: Settings, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("guard")
    await create_topics(kafka_broker.kafka_bootstrap, [TopicSpec(topic, 2)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.kafka_bootstrap)
    await producer.start()
    try:
        for i in range(3000):
            await producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=1)
        await producer.flush()
    finally:
        await producer.stop()
    guard = OffsetGuard(kafka_broker.kafka_bootstrap)
    try:
        guard.reset({(topic, 1): 0})
        assert await guard.before(topic, 1, 0) == []
        back = await guard.before(topic, 1, 2500)  # 1 … 2499 were jumped over
    finally:
        await guard.stop()
    assert [r.offset for r in back] == list(range(1, 2500))
    assert [(r.key, r.value) for r in back] == [(b"k%d" % i, b"v%d" % i) for i in range(1, 2500)]


async def test_committed_offsets_are_the_groups_own_on_the_asked_topics(
    kafka_broker: Settings, unique_name: Callable[[str], str]
) -> None:
    bootstrap, group = kafka_broker.kafka_bootstrap, unique_name("group")
    assert await committed_offsets(bootstrap, group, {"src.civil.birth.v1"}) == {}
    await commit_offsets(bootstrap, group, {("src.civil.birth.v1", 0): 0,
                                            ("src.civil.death.v1", 1): 0})  # fmt: skip
    assert await committed_offsets(bootstrap, group, {"src.civil.birth.v1"}) == {
        ("src.civil.birth.v1", 0): 0
    }
