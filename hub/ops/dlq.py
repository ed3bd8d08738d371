"""`hub dlq list|replay`: read the dead-letter topics, group them, and re-inject them.

A replay sends each dead letter's original key, value and headers back to its source topic
(after a fix was deployed) and remembers which dead letters it replayed in a ledger under
HUB_HOME, so running the same replay twice re-injects nothing the second time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.domain.records import DeadLetter
from hub.domain.topics import AckTopic, AgencyTopic, SourceTopic, dead_letter_topic
from hub.kafka.admin import topic_partitions
from hub.kafka.client import Connectable, options, start_client
from hub.wire.codec import Codec, CodecError

DLQ_TOPICS = [dead_letter_topic(t.value) for t in (*SourceTopic, *AgencyTopic, *AckTopic)]


@dataclass(frozen=True)
class Letter:
    """A dead letter and where it sits in its dead-letter topic."""

    dlq_topic: str
    partition: int
    offset: int
    record: DeadLetter

    @property
    def ref(self) -> str:
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"


async def read_letters(kafka: Connectable, topics: Iterable[str] = DLQ_TOPICS) -> list[Letter]:
    """Every dead letter now in ``topics`` (from the beginning up to the current end)."""
    codec = Codec()
    consumer = await start_client(AIOKafkaConsumer(**options(kafka), enable_auto_commit=False,
                                              group_id=None))  # fmt: skip
    letters: list[Letter] = []
    try:
        tps = await topic_partitions(consumer, topics)
        if not tps:
            return letters
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=2000, max_records=5000)
            if not batch:
                break
            for tp, records in batch.items():
                for r in records:
                    try:
                        record = DeadLetter.model_validate(codec.decode(r.value or b"")[1])
                    except (CodecError, ValueError):
                        continue  # not written by the hub; nothing to replay
                    letters.append(Letter(r.topic, r.partition, r.offset, record))
                if records and records[-1].offset + 1 >= ends[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return letters


@dataclass(frozen=True)
class Group:
    topic: str
    stage: str
    reason: str
    count: int
    example: str


def group_letters(letters: Iterable[Letter]) -> list[Group]:
    """Dead letters grouped by source topic, stage and reason, largest group first."""
    counts: Counter[tuple[str, str, str]] = Counter()
    example: dict[tuple[str, str, str], str] = {}
    for letter in letters:
        key = (letter.record.original_topic, letter.record.stage.value, letter.record.reason)
        counts[key] += 1
        example.setdefault(key, letter.record.detail)
    return [Group(*key, n, example[key]) for key, n in counts.most_common()]


class Ledger:
    """The dead letters already replayed (a JSON file of dead-letter refs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set(json.loads(path.read_text())) if path.exists() else set()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(self.done)))
        tmp.replace(self.path)


def select(letters: Iterable[Letter], topic: str, reason: str | None, ledger: Ledger,
           since: datetime | None = None) -> list[Letter]:  # fmt: skip
    """The dead letters of source ``topic`` (and ``reason``; dead-lettered at or after
    ``since``) not replayed before."""
    return [
        letter
        for letter in letters
        if letter.record.original_topic == topic
        and (reason is None or letter.record.reason == reason)
        and (since is None or letter.record.failed_at >= since)
        and letter.ref not in ledger.done
    ]


async def replay(kafka: Connectable, letters: list[Letter], ledger: Ledger) -> int:
    """Send each letter's original message to its source topic; record it in the ledger."""
    producer = await start_client(AIOKafkaProducer(**options(kafka), acks="all",
                                               enable_idempotence=True))  # fmt: skip
    try:
        for letter in letters:
            rec = letter.record
            headers = [(h.key, h.value or b"") for h in rec.original_headers]
            headers.append(("hub-replayed-from", letter.ref.encode()))
            await producer.send_and_wait(rec.original_topic, key=rec.original_key,
                                         value=rec.original_value, headers=headers)  # fmt: skip
            ledger.done.add(letter.ref)
    finally:
        await producer.stop()
        ledger.save()
    return len(letters)
