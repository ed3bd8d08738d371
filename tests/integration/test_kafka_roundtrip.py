"""The foundation: the real local broker carries keyed messages exactly once, in order per key."""

from __future__ import annotations

import shutil
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.domain.topics import TopicSpec
from hub.kafka.admin import create_topics
from hub.settings import Settings
from tests.conftest import run_hub

pytestmark = pytest.mark.integration

MESSAGES = 10_000
KEYS = 500


async def test_round_trip_10k_keyed_messages(
    kafka_broker: Settings, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("roundtrip")
    await create_topics(kafka_broker.kafka_bootstrap, [TopicSpec(topic, 4)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = []
        for seq in range(MESSAGES):
            key = f"key-{seq % KEYS:04d}".encode()
            sent.append(await producer.send(topic, key=key, value=str(seq).encode()))
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_broker.kafka_bootstrap,
        auto_offset_reset="earliest", enable_auto_commit=False, group_id=unique_name("g"),
    )  # fmt: skip
    await consumer.start()
    received: list[tuple[bytes, int, int]] = []
    try:
        while len(received) < MESSAGES:
            batch = await consumer.getmany(timeout_ms=10_000)
            if not batch:
                break
            for tp, records in batch.items():
                received += [(r.key, int(r.value), tp.partition) for r in records]  # type: ignore[arg-type]
    finally:
        await consumer.stop()

    assert len(received) == MESSAGES
    assert sorted(seq for _, seq, _ in received) == list(range(MESSAGES))
    per_key: dict[bytes, list[int]] = defaultdict(list)
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for key, seq, partition in received:
        per_key[key].append(seq)
        partitions_of_key[key].add(partition)
    assert len(per_key) == KEYS
    assert all(seqs == sorted(seqs) for seqs in per_key.values()), "order per key broken"
    assert all(len(p) == 1 for p in partitions_of_key.values()), "a key spread over partitions"


def test_topics_create_twice_reports_nothing_to_do(kafka_broker: Settings) -> None:
    run_hub("topics", "create")
    second = run_hub("topics", "create")
    assert second.stdout.startswith("nothing to do")


def test_status_reports_the_running_broker(kafka_broker: Settings) -> None:
    out = run_hub("kafka", "status").stdout
    assert "running at 127.0.0.1:" in out
    assert run_hub("kafka", "start").returncode == 0  # starting twice is harmless


def test_start_without_java_fails_with_one_line(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    mvn = shutil.which("mvn")
    if mvn:
        (bindir / "mvn").symlink_to(mvn)
    result = run_hub("kafka", "start", env={"PATH": str(bindir)}, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "java" in lines[0] and "install" in lines[0]
