"""A re-sent event is a flagged copy on the unified topic, stored once, and fans out nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pytest

from hub.domain.records import AgencyTask, UnifiedEvent
from hub.domain.topics import AgencyTopic, SourceTopic, UnifiedTopic
from hub.settings import Settings
from hub.sim.simulator import produce
from hub.wire.codec import Codec
from tests.integration.test_pipeline import read_all
from tests.integration.workers import WorkerProcess, traffic_for_new_group

pytestmark = pytest.mark.integration
R = TypeVar("R", UnifiedEvent, AgencyTask)


def decoded(codec: Codec, model: type[R], records: list[Any]) -> list[R]:
    return [model.model_validate(codec.decode(r.value)[1]) for r in records]


async def test_copies_sent_later_and_in_the_same_batch_are_flagged_and_stored_once(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "dups", codec, 3, 500)
    events = [traffic.event(SourceTopic.BIRTH) for _ in range(200)]
    births = [traffic.message(e) for e in events]
    # 20 copies right behind their originals: the same batch (found among its own events).
    await produce(bootstrap, [*births, *births[:20]])
    ids = {str(m.event_id) for m in births}

    worker = WorkerProcess(tmp_path / "w", group)
    worker.start()
    try:
        assert worker.wait_stored(list(ids)) == 200
        # 30 more copies once the originals are stored: found in the central store.
        await produce(bootstrap, births[50:80])
        unified: list[UnifiedEvent] = []
        for _ in range(60):
            records = await read_all(bootstrap, [UnifiedTopic.CIVIL_STATUS.value], idle_ms=1000)
            unified = [e for e in decoded(codec, UnifiedEvent, records) if str(e.event_id) in ids]
            if len(unified) >= 250:
                break
        task_topics = [t.value for t in AgencyTopic if t is not AgencyTopic.ACK]
        tasks = decoded(codec, AgencyTask, await read_all(bootstrap, task_topics))
    finally:
        worker.stop()

    assert len(unified) == 250, "every copy is delivered on the unified topic"
    copies = [e for e in unified if "duplicate" in e.quality.issues]
    assert len(copies) == 50 and not any(e.quality.clean for e in copies)
    first = {str(e.event_id): e for e in unified if "duplicate" not in e.quality.issues}
    assert set(first) == set(ids), "each original once, not flagged"
    for copy in copies:
        assert copy.lineage.offset > first[str(copy.event_id)].lineage.offset
    assert worker.query("SELECT count(*), count(DISTINCT event_id) FROM events") == [(200, 200)]
    rows = worker.query("SELECT event_id, source_offset FROM events")
    assert {e: o for e, o in rows} == {e: first[e].lineage.offset for e in ids}, (
        "the store keeps where each event was first read"
    )
    triggered = [t for t in tasks if str(t.trigger_event_id) in ids]
    # One task per procedure each applicant chose (newborns: every choice is eligible), none
    # for a copy.
    chosen = sum(len(b.interconnection.procedures) for b in events if b.interconnection)
    assert chosen > 200, "the simulated mix chooses interconnected procedures"
    assert len(triggered) == chosen, "one task per chosen procedure, none for a copy"
    assert len({t.task_id for t in triggered}) == chosen
