"""Models of the records the hub itself writes: envelope, agency messages, register, dead letter."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Self, TypedDict
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.domain.enums import CodeSystem, EventType, Sex
from hub.domain.events import NS, Record, check_personal_id, normalise_name
from hub.domain.text import record_hygiene


class Agency(StrEnum):
    """The bodies that act on interconnected procedures after the 2025 reorganisation
    (docs/WORKFLOWS.md). SOCIAL_AFFAIRS stays only so tasks written before can be read."""

    POLICE = "POLICE"  # commune police: residence registration and removal
    SOCIAL_INSURANCE = "SOCIAL_INSURANCE"  # Vietnam Social Security: cards, insured benefits
    SOCIAL_AFFAIRS = "SOCIAL_AFFAIRS"  # retired: the pre-2025 labour and social affairs sector
    COMMUNE_PEOPLES_COMMITTEE = "COMMUNE_PEOPLES_COMMITTEE"  # social-protection funeral support
    PROVINCIAL_HOME_AFFAIRS = "PROVINCIAL_HOME_AFFAIRS"  # people with meritorious services


class AgencyAction(StrEnum):
    RESIDENCE_REGISTRATION = "RESIDENCE_REGISTRATION"
    RESIDENCE_REMOVAL = "RESIDENCE_REMOVAL"
    HEALTH_CARD_ISSUE = "HEALTH_CARD_ISSUE"
    HEALTH_CARD_CLOSE = "HEALTH_CARD_CLOSE"  # retired: not one of the decree's procedures
    FUNERAL_ALLOWANCE = "FUNERAL_ALLOWANCE"
    SURVIVOR_BENEFIT = "SURVIVOR_BENEFIT"


class AckOutcome(StrEnum):
    DONE = "DONE"
    REJECTED = "REJECTED"
    NEEDS_SUPPLEMENT = "NEEDS_SUPPLEMENT"


class Stage(StrEnum):
    DECODE = "DECODE"
    VALIDATE = "VALIDATE"
    CONVERT = "CONVERT"
    VERIFY = "VERIFY"
    ROUTE = "ROUTE"
    PRODUCE = "PRODUCE"
    DELIVER = "DELIVER"
    STORE = "STORE"


class _Nested(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QualityFlags(_Nested):
    correct: bool
    sufficient: bool
    clean: bool
    alive: bool
    unified: bool
    shared: bool
    issues: list[str] = Field(default_factory=list)


class Lineage(_Nested):
    topic: str
    partition: int
    offset: int


class UnifiedEvent(Record):
    SCHEMA = f"{NS}.UnifiedEvent"

    event_id: UUID
    event_type: EventType
    source_system: str
    subject_id: str
    province_code: str
    commune_code: str
    source_code_system: CodeSystem
    occurred_at: datetime
    ingested_at: datetime
    quality: QualityFlags
    lineage: Lineage
    payload_schema: str
    payload: bytes


class QualityRecord(TypedDict):
    """An event's quality flags as the envelope carries them (``QualityFlags``'s Avro record)."""

    correct: bool
    sufficient: bool
    clean: bool
    alive: bool
    unified: bool
    shared: bool
    issues: list[str]


class LineageRecord(TypedDict):
    """Where an event was read (``Lineage``'s Avro record)."""

    topic: str
    partition: int
    offset: int


class Envelope(TypedDict):
    """The unified envelope as the worker builds it: ``UnifiedEvent``'s Avro record as a plain
    dict, from values the pipeline has already validated, handed to fastavro as it is. One per
    event: ~1 µs to build, against ~10 for the three models and their dump (docs/
    BENCHMARKS.md, fifteenth round). The event id is held as its canonical text, as Avro's
    ``uuid`` logical type writes it (converted once, not by every writer of it). ``UnifiedEvent``
    stays the contract: tests/unit/test_records.py validates every envelope the pipeline builds
    against it and checks that both encode to the same bytes."""

    event_id: str
    event_type: EventType
    source_system: str
    subject_id: str
    province_code: str
    commune_code: str
    source_code_system: CodeSystem
    occurred_at: datetime
    ingested_at: datetime
    quality: QualityRecord
    lineage: LineageRecord
    payload_schema: str
    payload: bytes


class AgencyTask(Record):
    SCHEMA = f"{NS}.AgencyTask"

    case_id: UUID
    task_id: str
    workflow: str
    agency: Agency
    action: AgencyAction
    trigger_event_id: UUID
    province_code: str
    commune_code: str
    issued_at: datetime
    due_at: datetime
    fields: dict[str, str]
    dossier_code: str | None = None
    deadline_basis: str | None = None
    case_task_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _hygiene(cls, data: Any) -> Any:
        """Text hygiene (hub/domain/text.py): a task's text goes to agencies and the store."""
        return record_hygiene(data, cls.model_fields, cls.__name__,
                              free_text=("deadline_basis",))  # fmt: skip


class AgencyAcknowledgement(Record):
    SCHEMA = f"{NS}.AgencyAcknowledgement"

    case_id: UUID
    task_id: str
    agency: Agency
    outcome: AckOutcome
    acknowledged_at: datetime
    reference: str | None = None
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _hygiene(cls, data: Any) -> Any:
        """Text hygiene (hub/domain/text.py): an agency's answer goes to the citizen's
        notification and the store (PostgreSQL refuses a NUL in text: one would stop the worker
        on every retry)."""
        return record_hygiene(data, cls.model_fields, cls.__name__, free_text=("note",))


class CaseNotification(Record):
    SCHEMA = f"{NS}.CaseNotification"

    notification_id: UUID
    case_id: UUID
    dossier_code: str | None = None
    workflow: str
    step: str | None = None
    agency: str | None = None
    state: str
    reason: str | None = None
    message_vi: str
    at: datetime


class PopulationRecord(Record):
    SCHEMA = f"{NS}.PopulationRecord"

    personal_id: str
    full_name: str
    sex: Sex
    date_of_birth: date
    province_code: str
    commune_code: str
    deceased: bool = False
    date_of_death: date | None = None
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _nfc(cls, data: object) -> object:
        if isinstance(data, dict) and "full_name" in data:
            data = {**data, "full_name": normalise_name(data["full_name"])}
        return data

    @model_validator(mode="after")
    def _rules(self) -> Self:
        check_personal_id(self.personal_id, self.sex, self.date_of_birth, "register")
        return self


class Header(_Nested):
    key: str
    value: bytes | None = None


class DeadLetter(Record):
    SCHEMA = f"{NS}.DeadLetter"

    original_topic: str
    original_partition: int
    original_offset: int
    original_key: bytes | None = None
    original_value: bytes | None = None
    original_headers: list[Header] = Field(default_factory=list)
    stage: Stage
    reason: str
    detail: str
    failed_at: datetime
    worker: str


HUB_RECORDS: tuple[type[Record], ...] = (
    UnifiedEvent,
    AgencyTask,
    AgencyAcknowledgement,
    PopulationRecord,
    DeadLetter,
    CaseNotification,
)
