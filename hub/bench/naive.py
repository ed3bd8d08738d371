"""Contender (e): the same work as `hub worker`, written the obvious way with faust — one event
at a time, faust topic sends, one store transaction per event. Our own starting point.

Run as ``python -m hub.bench.naive worker`` with the usual HUB_* settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust

from hub.domain.records import AgencyTask, UnifiedEvent
from hub.domain.topics import AgencyTopic, SourceTopic, UnifiedTopic, dead_letter_topic
from hub.kafka.client import connection, faust_broker
from hub.settings import load_settings
from hub.store.sql import batch_from, open_store
from hub.stream.pipeline import Accepted, Pipeline, PipelineConfig
from hub.types import Incoming
from hub.wire.codec import Codec

settings = load_settings()
codec = Codec()
pipeline = Pipeline(codec, PipelineConfig())
app = faust.App(
    settings.app_id,
    **faust_broker(connection(settings)),
    store="memory://",
    web_port=settings.metrics_port,
    web_host="127.0.0.1",
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    datadir=str(settings.home / "naive"),
)
source = app.topic(*[t.value for t in SourceTopic], key_serializer="raw", value_serializer="raw")
topics = {t.value: app.topic(t.value, key_serializer="raw", value_serializer="raw")
          for t in (*UnifiedTopic, *AgencyTopic)}  # fmt: skip
dlq = {t.value: app.topic(dead_letter_topic(t.value), key_serializer="raw",
                          value_serializer="raw") for t in SourceTopic}  # fmt: skip
seen = app.Table("naive-seen", key_type=bytes, value_type=bytes, partitions=settings.partitions)
store_box: dict[str, Any] = {}


@app.agent(source)
async def process(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    async for event in stream.events():
        m = event.message
        now = datetime.now(UTC)
        msg = Incoming(m.topic, m.partition, m.offset, m.key, m.value)
        outcome = pipeline.process(msg, lambda _: None, lambda k: seen.get(k.encode()), now)
        if isinstance(outcome, Accepted):
            env = outcome.envelope
            value = codec.encode(UnifiedEvent.SCHEMA, env)
            await topics[outcome.unified_topic].send(key=outcome.key.encode(), value=value)
            for topic, task in outcome.tasks:
                await topics[topic.value].send(key=str(task.case_id).encode(),
                                               value=codec.encode(AgencyTask.SCHEMA,
                                                                  task.to_avro()))  # fmt: skip
            seen[env["event_id"].encode()] = msg.lineage.encode()
            if "s" not in store_box:
                store_box["s"] = open_store(settings.resolved_store_url)
            store = store_box["s"]
            store.write(batch_from([(env, outcome.event)], now, store.stamp))  # one per event
        else:
            await dlq[m.topic].send(key=m.key, value=m.value)
        yield None


if __name__ == "__main__":
    app.main()
