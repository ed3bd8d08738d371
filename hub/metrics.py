"""The metrics catalogue: every Prometheus series the hub exports, built on an injected registry.

Names are an interface (dashboards and alert rules use them). Labels are bounded: topics,
34 provinces, a closed set of sources, reasons, stages, workflows and agencies; never a
personal ID or an event id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

from hub.domain.topics import SourceTopic

# The *_created series double the exposition and no dashboard or rule uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# occurred → stored spans source clocks, queueing and batching: 5 ms to 10 min.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
# One pipeline stage for one event or one store batch: 50 µs to 5 s.
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5)
# A batch's steps in ``hub_stage_duration_seconds``: the pipeline with its lookups ("submit"),
# waiting for Kafka's acknowledgements ("produce"), the store transaction ("store"), the same
# fetch's agency tasks and answers applied to their cases ("cases"), and the fetch's whole turn
# ("chunk"): the batch and the cases run side by side, so it is less than the others' sum by
# what overlapped (hub/stream/chunks.py).
BATCH_STAGES = ("submit", "produce", "store", "cases", "chunk")


class Children:
    """A labelled metric's children, each looked up once.

    ``labels()`` validates and takes a lock on every call; the worker's hot path asks for the
    same few label sets thousands of times a second.
    """

    def __init__(self, metric: MetricWrapperBase) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


@dataclass(frozen=True)
class HubMetrics:
    events_in: Counter
    events_out: Counter
    dead_letters: Counter
    latency: Histogram
    store_rows: Counter
    store_write_errors: Counter
    stage_seconds: Histogram
    consumer_lag: Gauge
    quality: Counter
    cases_open: Gauge
    cases_overdue: Gauge
    cases_waiting: Gauge
    tasks_open: Gauge
    tasks_overdue: Gauge
    interconnection_skipped: Counter
    notifications: Counter
    identity_issues: Counter
    ready: Gauge
    register_ready: Gauge
    register_records: Counter
    offsets_reread: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HubMetrics:
        r = registry
        return cls(
            events_in=Counter("hub_events_in", "Messages read from source topics.",
                              ["topic"], registry=r),
            events_out=Counter("hub_events_out", "Messages produced to unified and agency topics.",
                               ["topic"], registry=r),
            dead_letters=Counter("hub_dead_letters", "Messages sent to a dead-letter topic.",
                                 ["topic", "reason"], registry=r),
            latency=Histogram("hub_event_latency_seconds",
                              "Delay from an event's occurrence to its row in the central store.",
                              buckets=LATENCY_BUCKETS, registry=r),
            store_rows=Counter("hub_store_rows", "New rows written to the events table.",
                               registry=r),
            store_write_errors=Counter("hub_store_write_errors",
                                       "Failed central-store write attempts.", registry=r),
            stage_seconds=Histogram("hub_stage_duration_seconds",
                                    "Time spent per pipeline stage (per event, or per batch).",
                                    ["stage"], buckets=STAGE_BUCKETS, registry=r),
            consumer_lag=Gauge("hub_consumer_lag", "Messages behind the end of the partition.",
                               ["topic", "partition"], registry=r),
            quality=Counter("hub_quality_events",
                            "Events scored per quality dimension, result ok=true|false.",
                            ["dimension", "source", "province", "ok"], registry=r),
            cases_open=Gauge("hub_interconnection_cases_open",
                             "Interconnection cases waiting for an agency.", ["workflow"],
                             registry=r),
            cases_overdue=Gauge("hub_interconnection_cases_overdue",
                                "Open interconnection cases past their deadline.", ["workflow"],
                                registry=r),
            cases_waiting=Gauge("hub_interconnection_cases_waiting",
                                "Cases with agency answers but no task seen yet (the task comes "
                                "within seconds; one that stays: answers for an unknown case).",
                                registry=r),
            tasks_open=Gauge("hub_interconnection_tasks_open",
                             "Agency tasks not yet acknowledged.", ["workflow", "agency"],
                             registry=r),
            tasks_overdue=Gauge("hub_interconnection_tasks_overdue",
                                "Agency tasks past their deadline.", ["workflow", "agency"],
                                registry=r),
            interconnection_skipped=Counter(
                "hub_interconnection_skipped",
                "Interconnected procedures not opened, by reason (digitised, correction, "
                "registration_only, child_not_under_6, collective_household, …).",
                ["workflow", "reason"], registry=r),
            notifications=Counter("hub_case_notifications",
                                  "Citizen-facing case notifications sent, by state.",
                                  ["workflow", "state"], registry=r),
            ready=Gauge("hub_worker_ready",
                        "1 once the worker recovered its tables and processes streams.",
                        registry=r),
            register_ready=Gauge("hub_register_ready",
                                 "1 once the register in the store caught up with "
                                 "ref.population.v1 as it was when the worker started.",
                                 registry=r),
            register_records=Counter("hub_register_records",
                                     "Register feed records applied to the store, applied "
                                     "already (by another worker's feed), or rejected "
                                     "(unreadable).", ["outcome"], registry=r),
            offsets_reread=Counter("hub_offsets_reread",
                                   "Messages the consumer skipped that the worker read back.",
                                   ["topic"], registry=r),
            identity_issues=Counter("hub_identity_issues",
                                    "Events whose subject disagrees with the population register.",
                                    ["source", "issue"], registry=r),
        )  # fmt: skip


def source_label(topic: str) -> str:
    """'src.civil.birth.v1' → 'civil.birth' (a closed set of 8 values)."""
    parts = topic.split(".")
    return ".".join(parts[1:-1]) if len(parts) >= 3 else topic


# The eight sources by that label, as operators name them (`hub import --source`, API keys).
SOURCE_LABELS = tuple(source_label(t.value) for t in SourceTopic)
