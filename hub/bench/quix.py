"""Contender (d): the hub's pipeline wired with Quix Streams, in Quix Streams' own idiom.

Same codec and the same pure pipeline as `hub worker`; the wiring is a StreamingDataFrame per
source topic: a stateful ``apply`` runs the pipeline (the seen-event check in Quix state),
branches route accepted envelopes to the unified topic, agency tasks to their topics (a topic
chosen per value) and rejected messages to the dead-letter topic, and a ``BatchingSink``
writes the central store at each checkpoint. Like contender (e) it has no population register
lookup (the hub worker does one per civil-status and health event).

Run as ``python -m hub.bench.quix`` with the usual HUB_* settings (needs the bench extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quixstreams import Application, State
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Topic
from quixstreams.models.serializers import SerializationContext, Serializer
from quixstreams.sinks import BatchingSink, SinkBatch

from hub.domain.records import AgencyTask, UnifiedEvent
from hub.domain.topics import UNIFIED_TOPIC_OF, AgencyTopic, SourceTopic, dead_letter_topic
from hub.kafka.client import connection, librdkafka_config
from hub.settings import load_settings
from hub.store.sql import Store, batch_from, open_store
from hub.stream.pipeline import Accepted, Pipeline, PipelineConfig, Rejected
from hub.types import Incoming
from hub.wire.codec import Codec

codec = Codec()
pipeline = Pipeline(codec, PipelineConfig())


@dataclass(frozen=True)
class Outcome:
    incoming: Incoming
    result: Accepted | Rejected


class EnvelopeSerializer(Serializer):
    def __call__(self, value: Any, ctx: SerializationContext) -> bytes:
        return codec.encode(UnifiedEvent.SCHEMA, value.result.envelope)


class TaskSerializer(Serializer):
    def __call__(self, value: Any, ctx: SerializationContext) -> bytes:
        return codec.encode(AgencyTask.SCHEMA, value[1].to_avro())


class StoreSink(BatchingSink):
    """The central store, written once per topic-partition batch at each checkpoint."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.store: Store | None = None

    def setup(self) -> None:
        self.store = open_store(self.url)

    def write(self, batch: SinkBatch) -> None:
        assert self.store is not None
        self.store.write(batch_from([item.value for item in batch], datetime.now(UTC),
                                    self.store.stamp))  # fmt: skip


def run_pipeline(
    value: bytes, key: Any, timestamp: int, headers: Any, state: State[Any, Any]
) -> Outcome:
    from quixstreams import message_context

    ctx = message_context()
    msg = Incoming(ctx.topic, ctx.partition, ctx.offset, key, value)
    result = pipeline.process(msg, lambda _: None, state.get, datetime.now(UTC))
    if isinstance(result, Accepted):
        state.set(result.envelope["event_id"], msg.lineage)
    return Outcome(msg, result)


def build(app: Application, store_url: str) -> None:
    sink = StoreSink(store_url)
    agency: dict[AgencyTopic, Topic] = {
        t: app.topic(t.value, value_serializer=TaskSerializer(), key_serializer="bytes")
        for t in AgencyTopic
    }
    for source in SourceTopic:
        unified = app.topic(UNIFIED_TOPIC_OF[source].value, value_serializer=EnvelopeSerializer(),
                            key_serializer="bytes")  # fmt: skip
        dlq = app.topic(dead_letter_topic(source.value), value_serializer="bytes",
                        key_serializer="bytes")  # fmt: skip
        sdf = app.dataframe(app.topic(source.value, value_deserializer="bytes",
                                      key_deserializer="bytes"))  # fmt: skip
        sdf = sdf.apply(run_pipeline, stateful=True, metadata=True)
        accepted = sdf.filter(lambda o: isinstance(o.result, Accepted))
        accepted.to_topic(unified, key=lambda o: o.result.key.encode())
        accepted.apply(lambda o: (o.result.envelope, o.result.event)).sink(sink)
        tasks = accepted.apply(lambda o: o.result.tasks, expand=True)
        tasks.to_topic(lambda v, *_: agency[v[0]], key=lambda v: str(v[1].case_id).encode())
        rejected = sdf.filter(lambda o: isinstance(o.result, Rejected))
        rejected.apply(lambda o: o.incoming.value or b"").to_topic(dlq)


def main() -> None:
    settings = load_settings()
    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(
            librdkafka_config(connection(settings))
        ),
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        state_dir=str(settings.home / "quix-state"),
        commit_interval=1.0,
        loglevel="WARNING",
    )
    build(app, settings.resolved_store_url)
    app.run()


if __name__ == "__main__":
    main()
