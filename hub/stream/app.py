"""The faust app of `hub worker`: faust consumes, commits and serves /metrics; the work is done
by classes that know nothing of faust.

Every input arrives a fetch at a time through the ``hubkafka://`` transport (no faust agent),
and :class:`hub.stream.chunks.ChunkRouter` splits each fetch:
- source topics → unified topics, agency topics, dead letters and the central
  store, one batch at a time through :class:`hub.stream.batch.BatchProcessor` (submit → produce
  → store; the batch's offsets are acknowledged only after both succeeded, so a crash replays at
  most a batch, idempotent on both sides). Duplicates and the register entries of the batch's
  subjects are looked up in the central store, one query each per batch; the register is fed
  there from ref.population.v1 by ``register_feed`` (hub/stream/register.py).
- the same chunks' agency tasks and acknowledgements → interconnection case state (a faust
  table of the open cases, one write per case per chunk; closed cases go to the store) and
  citizen notifications, acknowledged the same way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from aiohttp.web import Response
from aiokafka.errors import KafkaError
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hub.domain.topics import (
    AckTopic,
    AgencyTopic,
    SourceTopic,
)
from hub.kafka.admin import committed_offsets
from hub.kafka.client import Connectable, connection, faust_broker
from hub.kafka.faust_compat import (
    QuietWorker,
    aiokafka_producer,
    on_recovery_completed,
    seek_committed_zero,
    set_producer_buffer,
)
from hub.kafka.offset_guard import OffsetGuard
from hub.kafka.outbox import MAX_BATCH_BYTES, Outbox
from hub.kafka.transport import SCHEME, take_in_chunks
from hub.metrics import Children, HubMetrics
from hub.settings import EventLoop, Settings
from hub.store.sql import Connection, StoreError
from hub.stream.batch import BatchProcessor
from hub.stream.cases import CaseTracker, report_cases
from hub.stream.chunks import ChunkRouter
from hub.stream.dead_letters import (
    DeadLetterLimit,
)
from hub.stream.pipeline import Pipeline, PipelineConfig
from hub.stream.register import RegisterCache, RegisterFeed
from hub.stream.retry import StoreRetry
from hub.wire.codec import Codec

log = logging.getLogger("hub.worker")

# Pending table-changelog messages before the stream waits for the producer to catch up.
TABLE_BUFFER = 20_000
# The case table's changelog rolls a segment every hour (Kafka's default: 7 days), so that the
# log cleaner can drop closed cases (their tombstones are kept delete.retention.ms, 1 day).
CASE_CHANGELOG_CONFIG = {"segment.ms": str(3_600_000)}


Worker = QuietWorker  # `hub worker` runs this (hub/kafka/faust_compat.py)


def use_event_loop(loop: EventLoop) -> None:
    """Install the event loop policy before the app (and its loop) is created."""
    if loop is EventLoop.UVLOOP:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# A young-generation collection every 20,000 net allocations instead of 700: a batch allocates
# tens of thousands of short-lived objects (records, models, rows), almost none in cycles.
GC_THRESHOLDS = (20_000, 50, 100)


def quiet_gc() -> None:
    """Fewer collections, and none over what start-up built: everything alive once the worker is
    ready (faust, aiokafka, the reference data of units, holidays and ICD-10: ~200k objects) is
    moved out of the collector's reach with ``gc.freeze``, so a full collection walks only what
    the batches made (its share is not separated by an A/B run of its own: docs/BENCHMARKS.md).
    Once per process: what is frozen is never collected, so later rebalances leave it alone."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def faust_app(settings: Settings, kafka: Connectable) -> faust.App:
    """The faust app: consumer group, commits, tables and the web server of ``/metrics``."""
    (settings.home / "worker").mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        **faust_broker(kafka, scheme=SCHEME),
        store="memory://",
        datadir=str(settings.home / "worker" / settings.app_id),
        web_port=settings.metrics_port,
        web_bind=settings.metrics_bind,
        web_host=settings.metrics_bind,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.commit_every,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=4096,
        broker_max_poll_records=settings.store_batch_size,
        consumer_max_fetch_size=settings.fetch_partition_bytes,
        producer_linger_ms=5,
        producer_max_batch_size=MAX_BATCH_BYTES,
        table_cleanup_interval=3600,
        web_in_thread=False,
        # The web server serves /metrics only: faust's /router and /table views would hand
        # anyone who reaches the port the keys and values of the tables (personal data).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
    )


def build_app(settings: Settings) -> faust.App:
    kafka = connection(settings)  # a wrong Kafka setting stops here, named
    codec = Codec()
    pipeline = Pipeline(
        codec,
        PipelineConfig(
            identity_mode=settings.identity_mode,
            freshness=timedelta(seconds=settings.freshness_s),
            register_max_age=timedelta(days=settings.register_max_age_days),
        ),
    )
    worker_name = f"{socket.gethostname()}:{os.getpid()}"
    registry = CollectorRegistry()
    metrics = HubMetrics.create(registry)
    app = faust_app(settings, kafka)
    if settings.faust_metrics:
        setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")
    else:
        serve_metrics(app, registry)
    # Dossier events and registrations write tables; faust's default buffer of 100 pending
    # changelog messages makes the stream wait on one-by-one flushes (~0.1 s each) too often.
    set_producer_buffer(app, TABLE_BUFFER)
    app.hub_metrics = metrics  # type: ignore[attr-defined]
    guard = OffsetGuard(kafka)

    # The register lives in the central store (hub/stream/register.py): fed from
    # ref.population.v1 by this worker, looked up once per batch through a bounded cache.
    register_cache = RegisterCache(
        codec, settings.register_cache_size, settings.register_cache_ttl_s
    )
    store = Connection(settings.resolved_store_url)
    # The feed applies its batches in a thread, on a connection of its own.
    feed_store = Connection(settings.resolved_store_url)
    feed_retry = StoreRetry(feed_store, metrics, in_thread=True)
    feed = RegisterFeed(kafka, settings.population_topic, feed_store, codec, register_cache,
                        metrics=metrics, retry=feed_retry)  # fmt: skip
    feed_stop = asyncio.Event()

    @app.task  # type: ignore[untyped-decorator]
    async def register_feed() -> None:
        await feed.run(feed_stop)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_feed(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        feed_stop.set()

    # Case state, keyed by case id. ``use_partitioner``: written from the chunk handler (no faust
    # event), its changelog partition is the key's, as it is for the tasks and acknowledgements
    # keyed by the same case id (Kafka's default partitioner everywhere).
    # Its values are the cases serialised by the tracker (compact JSON; faust's json serializer
    # wrote JSON too, so a changelog of before reads back): in memory less than half the dicts.
    case_table = app.Table("cases", partitions=settings.partitions, key_type=bytes,
                           value_type=bytes, use_partitioner=True,
                           extra_topic_configs=CASE_CHANGELOG_CONFIG)  # fmt: skip
    events_out = Children(metrics.events_out)
    # The batch's outputs go out as record batches (hub/kafka/outbox.py), counted per batch.
    outbox = Outbox(lambda: aiokafka_producer(app), lambda t, n: events_out(t).inc(n))
    processor = BatchProcessor(
        pipeline=pipeline, codec=codec, metrics=metrics, out=outbox, store=store,
        retry=StoreRetry(store, metrics), register=register_cache,
        population_topic=settings.population_topic,
        limit=DeadLetterLimit(settings.dlq_window, settings.dlq_max_ratio),
        worker_name=worker_name,
    )  # fmt: skip
    # The cases run beside the batch (hub/stream/chunks.py) with an outbox of their own: each
    # half's flush sends and waits for its own outputs (and times them as its own stage).
    case_out = Outbox(lambda: aiokafka_producer(app), lambda t, n: events_out(t).inc(n))
    cases = CaseTracker(codec=codec, metrics=metrics, out=case_out, table=case_table, store=store,
                        retry=StoreRetry(store, metrics), worker_name=worker_name)  # fmt: skip
    source_topics = [t.value for t in SourceTopic]
    chunks = ChunkRouter(sources=source_topics, batches=processor, cases=cases, guard=guard,
                         register_ready=feed.ready, metrics=metrics, crash=app.crash)  # fmt: skip
    case_topics = [t.value for t in (*AgencyTopic, *AckTopic)]
    take_in_chunks(app, [*source_topics, *case_topics], chunks.handle,
                   top_up_s=settings.fetch_top_up_ms / 1000)  # fmt: skip
    _guard_offsets(app, metrics, guard, settings, cases.reload)

    answer_wait = timedelta(seconds=settings.case_answer_wait_s)
    # The timer's dead letters (answers whose task never came) in an outbox of their own.
    letters = Outbox(lambda: aiokafka_producer(app), lambda t, n: events_out(t).inc(n))

    @app.timer(interval=settings.report_interval_s)  # type: ignore[untyped-decorator]
    async def report() -> None:
        now = datetime.now(UTC)
        try:
            await cases.expire_waiting(now, answer_wait, settings.cases_waiting_max, letters)
            await cases.store_changes(now)
        except (StoreError, KafkaError) as exc:  # retried, then given up; or a refused send
            await app.crash(exc)
            return
        report_cases(metrics, list(cases.open.values()), now)  # closed cases count in no gauge
        chunks.report_lag(app.consumer)

    return app


def serve_metrics(app: faust.App, registry: CollectorRegistry) -> None:
    """/metrics on the app's web server, without faust's per-event Prometheus sensor."""

    @app.page("/metrics")
    async def metrics_page(view: Any, request: Any) -> Any:
        headers = {"Content-Type": CONTENT_TYPE_LATEST}  # has a charset: not content_type=
        return Response(body=generate_latest(registry), headers=headers, status=200)


def _guard_offsets(app: faust.App, metrics: HubMetrics, guard: OffsetGuard, settings: Settings,
                   recovered: Callable[[], None]) -> None:  # fmt: skip
    """Give the offset guard the committed offsets before stream partitions resume.

    faust 0.15 seeks the stream partitions to the committed offsets while its drainer may be
    delivering, and can drop a message then (hub/kafka/offset_guard.py). Knowing where each
    partition resumes lets the worker notice a skipped first message too. (faust's gap filling,
    which counts offsets it jumped over as acknowledged, lives in the per-message drain the
    ``hubkafka://`` transport replaces: a jump is never committed past unread.)
    """

    topics = {t.value for t in (*SourceTopic, *AgencyTopic, *AckTopic)}

    async def before() -> None:
        metrics.ready.set(0)
        seek_committed_zero(app)
        try:
            committed = await committed_offsets(guard.kafka, settings.app_id, topics)
        except KafkaError as exc:
            log.warning("could not read committed offsets (%s); guarding from the first message",
                        exc)  # fmt: skip
            committed = {}
        guard.reset(committed)

    def ready() -> None:
        recovered()  # the tables hold this generation's partitions
        metrics.ready.set(1)
        quiet_gc()

    on_recovery_completed(app, before, ready)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_guard(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await guard.stop()
