"""The per-event pipeline as a pure function: decode ▸ validate ▸ convert ▸ verify ▸ score ▸ route.

No Kafka here. The worker's agent feeds messages in and applies the outcome (sends, table
writes); tests feed lists in and check the outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from hub.domain import calendar
from hub.domain.calendar import VIETNAM
from hub.domain.enums import CodeSystem
from hub.domain.errors import field_errors
from hub.domain.events import MODEL_OF_SCHEMA, SOURCE_MODELS, SourceEvent, clock_at
from hub.domain.identity import Lookup, check_claim, claims, register_update
from hub.domain.quality import score
from hub.domain.records import AgencyTask, Envelope, PopulationRecord, Stage
from hub.domain.topics import UNIFIED_TOPIC_OF, AgencyTopic, SourceTopic
from hub.domain.units import UnknownUnit, UnresolvedSplit, admin_units
from hub.domain.workflows import Plan, expand
from hub.settings import IdentityMode
from hub.types import Incoming
from hub.wire.codec import Codec, CodecError

# Rule violations the models raise, used as dead-letter reasons as they are.
RULE_REASONS = frozenset({
    "invalid_personal_id", "date_in_future", "dates_out_of_order", "unknown_admin_unit",
    "invalid_icd10", "empty_name", "missing_field", "missing_timezone",
    "control_character", "invisible_name", "field_too_long",
})  # fmt: skip


@dataclass(frozen=True)
class Rejected:
    stage: Stage
    reason: str
    detail: str


@dataclass(frozen=True)
class Accepted:
    event: SourceEvent
    envelope: Envelope
    unified_topic: str
    key: str
    duplicate: bool
    tasks: list[tuple[AgencyTopic, AgencyTask]] = field(default_factory=list)
    # Interconnected procedures the rules skipped: (workflow, reason), for the skipped metric.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    register: PopulationRecord | None = None


Outcome = Accepted | Rejected
SeenLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class PipelineConfig:
    identity_mode: IdentityMode = IdentityMode.FLAG
    freshness: timedelta = timedelta(minutes=5)
    register_max_age: timedelta = timedelta(days=365)


def validation_reason(exc: ValidationError) -> tuple[str, str]:
    errors = field_errors(exc)
    kind = errors[0]["reason"]
    reason = kind if kind in RULE_REASONS else "invalid_field"
    return reason, "; ".join(f"{e['field']}: {e['message']}" for e in errors)


class Pipeline:
    def __init__(self, codec: Codec, config: PipelineConfig) -> None:
        self.codec = codec
        self.config = config
        self.units = admin_units()
        # Deadlines count working days on this year's calendar and the next: read now, not in
        # the first batch with an interconnected procedure (a stall of ~0.1 s, more beside a
        # busy broker; docs/BENCHMARKS.md).
        year = datetime.now(VIETNAM).year
        calendar.load(year, year + 1)

    def decode(self, msg: Incoming) -> SourceEvent | Rejected:
        try:
            topic = SourceTopic(msg.topic)
        except ValueError:
            return Rejected(Stage.ROUTE, "unknown_topic", f"{msg.topic} is not a source topic")
        try:
            name, record = self.codec.decode(msg.value or b"")
        except CodecError as exc:
            return Rejected(Stage.DECODE, exc.reason, str(exc))
        model = MODEL_OF_SCHEMA.get(name)
        if model is not SOURCE_MODELS[topic]:
            return Rejected(Stage.DECODE, "wrong_schema_for_topic", f"{name} on {msg.topic}")
        try:
            return model.model_validate(record)
        except ValidationError as exc:
            reason, detail = validation_reason(exc)
            return Rejected(Stage.VALIDATE, reason, detail)

    def province_of(self, msg: Incoming) -> str:
        """Best effort, for scoring a dead letter: the 2025 province the message names, else
        "unknown" (it may not even be Avro)."""
        try:
            _, record = self.codec.decode(msg.value or b"")
            system = CodeSystem(record["code_system"])
            province, commune = str(record["province_code"]), str(record["commune_code"])
            return self.units.to_2025(system, province, commune)[0]
        except (CodecError, KeyError, ValueError, TypeError, UnknownUnit, UnresolvedSplit):
            return "unknown"

    def process(self, msg: Incoming, lookup: Lookup, seen: SeenLookup, now: datetime) -> Outcome:
        with clock_at(now):
            event = self.decode(msg)
        if isinstance(event, Rejected):
            return event
        return self.process_event(msg, event, lookup, seen, now)

    def process_event(self, msg: Incoming, event: SourceEvent, lookup: Lookup, seen: SeenLookup,
                      now: datetime, event_id: str | None = None) -> Outcome:  # fmt: skip
        """The stages after decoding, for a caller that decoded a batch first (to look up which
        of its event ids are already known in one query; ``event_id``: the event's id as that
        caller made it text)."""
        try:
            province, commune = self.units.to_2025(
                event.code_system, event.province_code, event.commune_code
            )
        except (UnknownUnit, UnresolvedSplit) as exc:
            return Rejected(Stage.CONVERT, exc.reason, str(exc))
        found = claims(event)  # the subject first
        person = lookup(found[0].personal_id) if found else None  # one register lookup
        identity_issues = check_claim(found[0], person) if found else []
        if identity_issues and self.config.identity_mode is IdentityMode.DEAD_LETTER:
            return Rejected(Stage.VERIFY, identity_issues[0], ", ".join(identity_issues))
        event_id = event_id or str(event.event_id)  # the envelope, the batch, the store use it
        first_seen = seen(event_id)
        duplicate = first_seen is not None and first_seen != msg.lineage
        quality = score(
            event,
            identity_issues,
            duplicate,
            now,
            self.config.freshness,
            person.updated_at if person else None,
            self.config.register_max_age,
        )
        key = event.subject_id()
        envelope: Envelope = {
            "event_id": event_id,
            "event_type": event.EVENT_TYPE,
            "source_system": event.source_system,
            "subject_id": key,
            "province_code": province,
            "commune_code": commune,
            "source_code_system": event.code_system,
            "occurred_at": event.occurred_at,
            "ingested_at": now,
            "quality": quality,
            "lineage": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
            "payload_schema": event.SCHEMA,
            "payload": msg.value or b"",
        }
        tasks, chosen = expand(event, province, commune, now)
        if duplicate:  # a copy fans out nothing (its original did)
            tasks, chosen = [], Plan(chosen.workflow)
        return Accepted(
            event=event,
            envelope=envelope,
            unified_topic=UNIFIED_TOPIC_OF[event.TOPIC].value,
            key=key,
            duplicate=duplicate,
            tasks=tasks,
            skipped=[(chosen.workflow.name, r) for r in chosen.skipped] if chosen.workflow else [],
            register=None if duplicate else register_update(event, lookup),
        )
