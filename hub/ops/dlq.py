"""`hub dlq list|replay`: read the dead-letter topics, group them, and re-inject them.

A replay sends each dead letter's original key, value and headers back to its source topic
(after a fix was deployed) and remembers which dead letters it replayed in a ledger under
HUB_HOME, so running the same replay twice re-injects nothing the second time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.domain.records import DeadLetter
from hub.domain.topics import AckTopic, AgencyTopic, SourceTopic, dead_letter_topic
from hub.kafka.admin import topic_partitions
from hub.kafka.client import Connectable, options, start_client
from hub.wire.codec import Codec, CodecError

# Every topic the hub dead-letters from: sources, agency tasks (refused deliveries) and
# acknowledgements (ack_without_task), the shared agency.ack.v1 of the migration included.
DEAD_LETTERED = [t.value for t in (*SourceTopic, *AgencyTopic, *AckTopic)]
DLQ_TOPICS = [dead_letter_topic(t) for t in DEAD_LETTERED]


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


async def iter_letters(kafka: Connectable,
                       topics: Iterable[str] = DLQ_TOPICS) -> AsyncIterator[Letter]:  # fmt: skip
    """Every dead letter now in ``topics`` (from the beginning up to the current end), one at a
    time: a deployment's dead-letter topics may hold millions, which need not fit in memory."""
    codec = Codec()
    consumer = await start_client(AIOKafkaConsumer(**options(kafka), enable_auto_commit=False,
                                                   group_id=None))  # fmt: skip
    try:
        tps = await topic_partitions(consumer, topics)
        if not tps:
            return
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
                    yield Letter(r.topic, r.partition, r.offset, record)
                if records and records[-1].offset + 1 >= ends[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()


async def count_letters(kafka: Connectable, topics: Iterable[str] = DLQ_TOPICS) -> list[Group]:
    """Dead letters in ``topics`` grouped by source topic, stage and reason, largest group
    first, counted as they are read (memory: one group a reason)."""
    groups = Grouping()
    async for letter in iter_letters(kafka, topics):
        groups.add(letter)
    return groups.result()


async def select_letters(kafka: Connectable, topic: str, reason: str | None, ledger: Ledger,
                         since: datetime | None = None) -> list[Letter]:  # fmt: skip
    """The dead letters of ``topic`` :func:`chosen` for a replay, read from its dead-letter topic
    (only those chosen are kept)."""
    return [letter async for letter in iter_letters(kafka, [dead_letter_topic(topic)])
            if chosen(letter, topic, reason, ledger, since)]  # fmt: skip


@dataclass(frozen=True)
class Group:
    topic: str
    stage: str
    reason: str
    count: int
    example: str


class Grouping:
    """Dead letters counted by source topic, stage and reason, with the first one's detail."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.example: dict[tuple[str, str, str], str] = {}

    def add(self, letter: Letter) -> None:
        key = (letter.record.original_topic, letter.record.stage.value, letter.record.reason)
        self.counts[key] += 1
        self.example.setdefault(key, letter.record.detail)

    def result(self) -> list[Group]:
        """The groups, largest first."""
        return [Group(*key, n, self.example[key]) for key, n in self.counts.most_common()]


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


def chosen(letter: Letter, topic: str, reason: str | None, ledger: Ledger,
           since: datetime | None = None) -> bool:  # fmt: skip
    """Whether ``letter`` came from ``topic`` (with ``reason``; dead-lettered at or after
    ``since``) and was not replayed before."""
    return (
        letter.record.original_topic == topic
        and (reason is None or letter.record.reason == reason)
        and (since is None or letter.record.failed_at >= since)
        and letter.ref not in ledger.done
    )


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
