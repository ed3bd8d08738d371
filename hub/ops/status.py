"""`hub status`: one look at the hub — broker, topics, consumer lag, worker, store."""

from __future__ import annotations

import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from hub.domain.topics import AgencyTopic, SourceTopic, UnifiedTopic, dead_letter_topic
from hub.kafka.admin import topic_partitions
from hub.kafka.client import connection, options
from hub.redaction import redact
from hub.settings import Settings
from hub.store.sql import StoreError, open_store


@dataclass
class HubStatus:
    broker: str
    broker_up: bool
    worker_metrics: str
    worker_up: bool
    messages: dict[str, int] = field(default_factory=dict)  # topic → messages now held
    lag: dict[str, int] = field(default_factory=dict)  # source topic → unconsumed messages
    store_url: str = ""
    store: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


WATCHED = [
    *(t.value for t in SourceTopic),
    *(t.value for t in UnifiedTopic),
    *(t.value for t in AgencyTopic),
    *(dead_letter_topic(t.value) for t in SourceTopic),
]


async def kafka_figures(settings: Settings, status: HubStatus) -> None:
    kafka = connection(settings)
    consumer = AIOKafkaConsumer(**options(kafka),
                                group_id=settings.app_id, enable_auto_commit=False,
                                request_timeout_ms=5000)  # fmt: skip
    try:
        await consumer.start()
    except Exception as exc:  # noqa: BLE001 - any failure means the broker is not usable
        status.errors.append(f"kafka at {kafka.describe()}: {exc}")
        return
    try:
        status.broker_up = True
        tps = await topic_partitions(consumer, WATCHED)
        if not tps:
            status.errors.append("no hub topics: run `hub topics create`")
            return
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            status.messages[tp.topic] = status.messages.get(tp.topic, 0) + ends[tp] - starts[tp]
        sources = {t.value for t in SourceTopic}
        for tp in tps:
            if tp.topic in sources:
                committed = await consumer.committed(tp)
                behind = ends[tp] - (committed if committed is not None else starts[tp])
                status.lag[tp.topic] = status.lag.get(tp.topic, 0) + max(0, behind)
    finally:
        await consumer.stop()


def store_figures(settings: Settings, status: HubStatus) -> None:
    try:
        store = open_store(settings.resolved_store_url)
    except StoreError as exc:
        status.errors.append(redact(str(exc)))
        return
    try:
        status.store["events"] = store.query("SELECT count(*) FROM events")[0][0]
        status.store["events_by_type"] = dict(
            store.query("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1")
        )
        status.store["citizens"] = store.query("SELECT count(*) FROM citizens")[0][0]
        status.store["dossiers"] = store.query("SELECT count(*) FROM dossiers")[0][0]
        status.store["cases_by_status"] = dict(
            store.query("SELECT status, count(*) FROM interconnection_cases GROUP BY 1")
        )
    finally:
        store.close()


def worker_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def gather(settings: Settings) -> HubStatus:
    metrics_url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    status = HubStatus(settings.kafka_bootstrap, False, metrics_url, worker_up(metrics_url),
                       store_url=redact(settings.resolved_store_url))  # fmt: skip
    await kafka_figures(settings, status)
    store_figures(settings, status)
    return status
