"""One bad input never stops the worker: a NUL in a name and a row PostgreSQL refuses, between
valid events of the same batch, are dead-lettered; so are an agency's answer with a NUL in its
note and one keyed with bytes that cannot be a case id; every valid event is stored exactly
once; the store's password appears in no log line."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.domain.records import AckOutcome, Agency, AgencyAcknowledgement, DeadLetter
from hub.domain.topics import SourceTopic, ack_topic_of, dead_letter_topic
from hub.settings import Settings
from hub.sim.simulator import produce
from hub.sim.traffic import Message
from hub.wire.codec import Codec
from tests.conftest import new_pg_schema
from tests.integration.test_pipeline import read_all
from tests.integration.workers import WorkerProcess, pg_rows, traffic_for_new_group

pytestmark = pytest.mark.integration


def pg_schema_url(base: str, refuse_subject: str) -> str:
    """A fresh schema holding the store's tables, with a test-only constraint that makes the
    database refuse one row even after text hygiene (as a real constraint or trigger would)."""
    import psycopg

    from hub.store.sql import open_store

    url = new_pg_schema(base, "hostile")
    open_store(url).close()  # the store's own tables
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE events ADD CONSTRAINT test_refuses_one "
            f"CHECK (subject_id <> '{refuse_subject}')"
        )
    return url


async def test_nul_name_and_a_refused_row_are_dead_lettered_and_the_worker_goes_on(
    kafka_broker: Settings, tmp_path: Path, postgres_url: str
) -> None:
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "hostile", codec, 3, 500)
    before = [traffic.message(traffic.event(SourceTopic.BIRTH)) for _ in range(600)]
    nul = traffic.poison("nul_in_name")
    refused = traffic.message(traffic.event(SourceTopic.BIRTH))
    after = [traffic.message(traffic.event(SourceTopic.BIRTH)) for _ in range(600)]
    url = pg_schema_url(postgres_url, refused.key.decode())
    nul_note, nul_key = hostile_answers(codec)
    # All in a row, so the worker meets them in the same batches.
    await produce(bootstrap, [*before, nul, nul_note, nul_key, refused, *after])
    valid = {str(m.event_id) for m in [*before, *after]}

    worker = WorkerProcess(tmp_path / "w", group, {"HUB_STORE_URL": url})
    worker.start()
    try:
        stored: list[tuple[Any, ...]] = []
        for _ in range(180):
            stored = pg_rows(url, "SELECT event_id FROM events")
            if len(stored) >= len(valid):
                break
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # anything still to come would show now
        assert worker.alive(), "the worker is alive after both"
        for view in ("/router", "/table", "/table/population/"):  # personal data: off
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{view}", timeout=5)
            assert answer.value.code == 404, view
        letters = await dead_letters(codec, bootstrap, [nul, refused])
        answers = await read_all(bootstrap, [dead_letter_topic(nul_note.topic)], 1000)
    finally:
        worker.stop()
    ids = [str(r[0]) for r in pg_rows(url, "SELECT event_id FROM events")]
    assert len(ids) == len(set(ids)) == 1200, "every valid event stored exactly once"
    assert set(ids) == valid
    assert letters[str(nul.event_id)].reason == "control_character"
    assert letters[str(refused.event_id)].reason == "store_rejected"
    assert "test_refuses_one" in letters[str(refused.event_id)].detail
    assert letters[str(refused.event_id)].original_value == refused.value
    answered = [DeadLetter.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
                for r in answers]  # fmt: skip
    assert [(a.reason, a.stage) for a in answered if a.original_value == nul_note.value] == [
        ("invalid_agency_message", "VALIDATE")]  # fmt: skip
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert password and password not in worker.log.read_text(errors="replace")


def hostile_answers(codec: Codec) -> tuple[Message, Message]:
    """An agency's answer with a NUL in its note, and a valid answer keyed with a NUL and bytes
    that are not text (the case lookup must not send that key to PostgreSQL)."""
    ack = AgencyAcknowledgement(case_id=uuid.uuid4(), task_id="t:RESIDENCE_REGISTRATION",
                                agency=Agency.POLICE, outcome=AckOutcome.DONE,
                                acknowledged_at=datetime.now(UTC), note="ok")  # fmt: skip
    topic = ack_topic_of(Agency.POLICE.value)
    bad = codec.encode(AgencyAcknowledgement.SCHEMA, ack.to_avro() | {"note": "x\x00y"})
    good = codec.encode(AgencyAcknowledgement.SCHEMA, ack.to_avro())
    return (Message(topic, str(ack.case_id).encode(), bad, None),
            Message(topic, b"\x00\xff", good, None))  # fmt: skip


async def dead_letters(
    codec: Codec, bootstrap: str, wanted: list[Message]
) -> dict[str, DeadLetter]:
    """The dead letters of ``wanted`` messages, by event id (matched on the original bytes)."""
    by_value = {m.value: str(m.event_id) for m in wanted}
    found: dict[str, DeadLetter] = {}
    for _ in range(30):
        for r in await read_all(bootstrap, [dead_letter_topic(SourceTopic.BIRTH.value)], 1000):
            letter = DeadLetter.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
            if letter.original_value in by_value:
                found[by_value[letter.original_value]] = letter
        if len(found) == len(wanted):
            break
        await asyncio.sleep(1)
    assert len(found) == len(wanted), f"dead letters found: {list(found)}"
    return found


async def test_a_message_larger_than_a_fetch_is_dead_lettered_and_its_partition_goes_on(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    """HUB_FETCH_PARTITION_BYTES bounds what the Kafka client holds of a partition, not the size
    of a message: a 300 KB value on a worker fetching 16 KiB of a partition still arrives (Kafka
    returns a partition's first record batch whole), is dead-lettered with its bytes, and the
    valid events behind it on the same partition are stored."""
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "oversized", codec, 2, 200)
    after = [traffic.message(traffic.event(SourceTopic.BIRTH)) for _ in range(300)]
    huge = Message(SourceTopic.BIRTH.value, after[0].key, b"\xc3\x01" + b"x" * 300_000, None)
    await produce(bootstrap, [huge, *after])  # the huge one first on after[0]'s partition
    worker = WorkerProcess(tmp_path / "w", group, {"HUB_FETCH_PARTITION_BYTES": "16384"})
    worker.start()
    try:
        valid = [str(m.event_id) for m in after]
        stored = await asyncio.to_thread(worker.wait_stored, valid, 120)
        assert stored == len(valid), worker.tail()
        letters = await read_all(bootstrap, [dead_letter_topic(SourceTopic.BIRTH.value)], 2000)
        assert worker.alive(), worker.tail()
    finally:
        worker.stop()
    found = [DeadLetter.model_validate(codec.decode(r.value)[1])  # type: ignore[attr-defined]
             for r in letters]  # fmt: skip
    mine = [f for f in found if f.original_value == huge.value]
    assert len(mine) == 1, "the oversized message is dead-lettered once, with its bytes"
    assert (mine[0].stage, mine[0].original_key) == ("DECODE", huge.key)
