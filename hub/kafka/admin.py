"""Small admin operations against a Kafka cluster, through aiokafka."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from hub.domain.topics import TopicSpec, missing_topics
from hub.kafka.client import Connectable, options


@asynccontextmanager
async def admin_client(kafka: Connectable, **kwargs: Any) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client on ``kafka``, closed when the block ends."""
    admin = AIOKafkaAdminClient(**options(kafka), **kwargs)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _list_topics(kafka: Connectable, timeout_s: float) -> set[str]:
    async with admin_client(kafka, request_timeout_ms=int(timeout_s * 1000)) as admin:
        return set(await admin.list_topics())


async def broker_answers(kafka: Connectable, timeout_s: float = 3.0) -> bool:
    """True when the cluster answers a metadata request within ``timeout_s``."""
    # A refused connection is the expected answer while the broker boots: keep it out of the log.
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)
    try:
        await asyncio.wait_for(_list_topics(kafka, timeout_s), timeout_s + 1)
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        aiokafka_log.setLevel(level)
    return True


async def create_topics(
    kafka: Connectable, plan: Sequence[TopicSpec], replication_factor: int = 1
) -> list[TopicSpec]:
    """Create the topics of ``plan`` that do not exist yet; return those created."""
    async with admin_client(kafka) as admin:
        existing = set(await admin.list_topics())
        todo = missing_topics(list(plan), existing)
        if todo:
            await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=replication_factor,
                        topic_configs=spec.config,
                    )
                    for spec in todo
                ]
            )
        return todo


async def topic_config(kafka: Connectable, topic: str) -> dict[str, str]:
    """The configuration of ``topic`` as the broker reports it (defaults included)."""
    async with admin_client(kafka) as admin:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return {str(entry[0]): str(entry[1]) for response in responses
            for resource in response.resources for entry in resource[4]}  # fmt: skip


async def delete_topics(kafka: Connectable, names: Sequence[str]) -> None:
    async with admin_client(kafka) as admin:
        await admin.delete_topics(list(names))


async def start_group_at_end(kafka: Connectable, group: str, topics: list[str]) -> bool:
    """Commit the current end offsets of ``topics`` for ``group`` when it has none yet.

    A new consumer group then starts with what is published from now on instead of the whole
    history. Returns False (and changes nothing) for a group that already committed offsets.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**options(kafka), group_id=group,
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        for tp in tps:
            if await consumer.committed(tp) is not None:
                return False
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.commit(dict(ends.items()))
        return True
    finally:
        await consumer.stop()


async def commit_offsets(
    kafka: Connectable, group: str, offsets: dict[tuple[str, int], int]
) -> None:
    """Commit ``offsets`` ((topic, partition) → next offset to read) for ``group``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**options(kafka), group_id=group,
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        tps = {TopicPartition(t, p): off for (t, p), off in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


async def end_offsets(kafka: Connectable, topics: list[str]) -> dict[tuple[str, int], int]:
    """The current end offset of every partition of ``topics``."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**options(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def topic_partitions(consumer: Any, topics: Iterable[str]) -> list[Any]:
    """Every partition of ``topics`` (after refreshing the consumer's metadata)."""
    from aiokafka import TopicPartition

    await consumer._client.force_metadata_update()
    return [TopicPartition(t, p) for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())]  # fmt: skip


async def committed_offsets(
    kafka: Connectable, group: str, topics: set[str]
) -> dict[tuple[str, int], int]:
    """The group's committed offsets on ``topics`` (partitions without a commit are left out)."""
    async with admin_client(kafka) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {
        (tp.topic, tp.partition): meta.offset
        for tp, meta in offsets.items()
        if tp.topic in topics and meta.offset >= 0
    }


async def partition_counts(kafka: Connectable, topics: list[str]) -> dict[str, int]:
    """How many partitions each existing one of ``topics`` has (missing topics left out)."""
    async with admin_client(kafka) as admin:
        described = await admin.describe_topics(topics)
    return {t["topic"]: len(t["partitions"]) for t in described
            if t.get("error_code", 0) == 0 and t["partitions"]}  # fmt: skip


def partitions_problem(counts: dict[str, int], wanted: int) -> str | None:
    """Why a worker with HUB_PARTITIONS=``wanted`` cannot run on topics of ``counts`` (faust's
    tables are partitioned like the topics they follow), or None."""
    other = sorted({n for n in counts.values() if n != wanted})
    if not other:
        return None
    example = next(t for t, n in counts.items() if n != wanted)
    return (f"HUB_PARTITIONS is {wanted} but the hub's topics have {', '.join(map(str, other))} "
            f"partitions (e.g. {example}): set HUB_PARTITIONS={other[0]}, or raise the topics' "
            "partitions first (docs/OPERATIONS.md, 'Partitions')")  # fmt: skip
