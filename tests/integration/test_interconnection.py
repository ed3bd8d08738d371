"""Interconnected procedures on the real broker: births and deaths fan out to exactly the
declared agency tasks; acknowledgements close the cases; an unacknowledged case is overdue."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.domain.records import Agency, AgencyAcknowledgement, AgencyTask
from hub.domain.topics import AgencyTopic, SourceTopic
from hub.domain.workflows import WORKFLOW_OF
from hub.settings import Settings
from hub.sim.agencies import acknowledgement
from hub.sim.simulator import produce
from hub.sim.traffic import Message
from hub.wire.codec import Codec
from tests.integration.test_pipeline import read_all
from tests.integration.workers import WorkerProcess, traffic_for_new_group

pytestmark = pytest.mark.integration
DEADLINE_S = 20


async def test_100_births_and_100_deaths_fan_out_close_and_go_overdue(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    codec = Codec()
    bootstrap = kafka_broker.kafka_bootstrap
    group, traffic = await traffic_for_new_group(bootstrap, "cases", codec, 3, 600)
    events = [traffic.event(SourceTopic.BIRTH) for _ in range(100)]
    events += [traffic.event(SourceTopic.DEATH) for _ in range(100)]
    await produce(bootstrap, (traffic.message(e) for e in events))
    by_id = {e.event_id: e for e in events}

    worker = WorkerProcess(tmp_path / "w", group, {"HUB_CASE_DEADLINE_S": str(DEADLINE_S)})
    worker.start()
    try:
        task_topics = [t.value for t in AgencyTopic if t is not AgencyTopic.ACK]
        tasks: list[tuple[str, AgencyTask]] = []
        deadline = time.monotonic() + 180
        while len({t.task_id for _, t in tasks}) < 500 and time.monotonic() < deadline:
            records = await read_all(bootstrap, task_topics)
            tasks = [
                (r.topic, t)  # type: ignore[attr-defined]
                for r in records
                if (t := AgencyTask.model_validate(codec.decode(r.value)[1])).trigger_event_id
                in by_id  # type: ignore[attr-defined]
            ]
        # Exactly the declared messages, carrying only the declared fields. Delivery to agencies
        # is at-least-once: a source event re-read after a rebalance or recovery re-sends its
        # tasks under the same task id (receivers de-duplicate by it); a copy must then be the
        # same message — same case, action, topic and fields.
        first: dict[str, tuple[str, AgencyTask]] = {}
        for topic, task in tasks:
            seen = first.setdefault(task.task_id, (topic, task))
            assert (seen[0], seen[1].case_id, seen[1].action, seen[1].fields) == (
                topic, task.case_id, task.action, task.fields,
            ), f"a re-sent copy of {task.task_id} differs"  # fmt: skip
        expected = Counter(
            (e.event_id, step.topic.value, step.action)
            for e in events
            for step in WORKFLOW_OF[e.EVENT_TYPE].steps
        )
        got = Counter((t.trigger_event_id, topic, t.action) for topic, t in first.values())
        assert got == expected
        for _, task in tasks:
            event = by_id[task.trigger_event_id]
            step = next(s for s in WORKFLOW_OF[event.EVENT_TYPE].steps if s.action is task.action)
            assert set(task.fields) <= set(step.fields), task.fields
            assert task.fields[step.fields[0]] == str(getattr(event, step.fields[0]))

        # Every agency acknowledges every task, except the social-insurance task of one birth.
        held_back = next(t for _, t in tasks if t.workflow == "birth"
                         and t.agency is Agency.SOCIAL_INSURANCE)  # fmt: skip
        now = datetime.now(UTC).replace(microsecond=0)
        acks = [
            Message(
                AgencyTopic.ACK.value,
                str(t.case_id).encode(),
                codec.encode(AgencyAcknowledgement.SCHEMA, acknowledgement(t, now).to_avro()),
                None,
            )
            for _, t in tasks
            if t.task_id != held_back.task_id
        ]
        await produce(bootstrap, acks)

        status: dict[str, int] = {}
        deadline = time.monotonic() + DEADLINE_S + 120
        while time.monotonic() < deadline:
            rows = worker.query("SELECT status, count(*) FROM interconnection_cases GROUP BY 1")
            status = {str(k): int(str(v)) for k, v in rows}
            if status == {"closed": 199, "overdue": 1}:
                break
            time.sleep(1)
        assert status == {"closed": 199, "overdue": 1}
        overdue = worker.query("SELECT case_id, pending FROM interconnection_cases "
                               "WHERE status = 'overdue'")  # fmt: skip
        assert overdue == [(str(held_back.case_id), Agency.SOCIAL_INSURANCE.value)]
        metrics = worker.metrics_text() or ""
        assert 'hub_interconnection_cases_overdue{workflow="birth"} 1.0' in metrics
    finally:
        worker.stop()
