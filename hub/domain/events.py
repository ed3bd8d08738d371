"""Domain models: the Avro records plus the rules Avro cannot express.

Each model mirrors one ``schemas/*.avsc`` record field for field (a test keeps them in step).
Rule violations raise ``PydanticCustomError`` with a machine-readable type, which the pipeline
uses as the dead-letter reason code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hub.domain.enums import (
    AppointmentStatus,
    BeneficiaryCategory,
    BirthProcedure,
    Channel,
    CodeSystem,
    DeathProcedure,
    DossierStatus,
    EncounterClass,
    EncounterStatus,
    EventType,
    Interpretation,
    ObservationStatus,
    ReceivingLevel,
    RecordOrigin,
    ReferralPriority,
    Sex,
)
from hub.domain.personal_id import personal_id_problems
from hub.domain.text import clean_name, record_hygiene
from hub.domain.topics import SourceTopic
from hub.domain.units import admin_units

NS = "vn.lienthong.hub"
# Source clocks drift; an event up to this far "in the future" is clock skew, not an error.
CLOCK_SKEW = timedelta(minutes=5)
# ICD-10: a letter, two digits, optionally a dot and up to 4 more characters (WHO / Vietnamese
# Ministry of Health edition; U is reserved for special purposes and allowed).
ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")


# The moment a whole batch is validated at ("now" for the not-in-the-future rules), read once
# per batch by the worker (:func:`clock_at`); otherwise every check reads the clock.
_batch_now: ContextVar[datetime | None] = ContextVar("batch_now", default=None)


def now_utc() -> datetime:
    return _batch_now.get() or datetime.now(UTC)


@contextmanager
def clock_at(now: datetime) -> Iterator[None]:
    """Validate with ``now`` as the current time inside the block (one clock read per batch)."""
    token = _batch_now.set(now)
    try:
        yield
    finally:
        _batch_now.reset(token)


def fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def check_personal_id(
    pid: str | None, sex: Sex | None = None, dob: date | None = None, who: str = "subject"
) -> None:
    if pid is None:
        return
    problems = personal_id_problems(pid, admin_units().birth_province_codes(), sex, dob)
    if problems:
        raise fail("invalid_personal_id", f"{who} personal ID {pid!r}: " + "; ".join(problems))


def check_aware(value: datetime | date, what: str) -> None:
    """A moment without a time zone cannot be placed in time (JSON input; Avro's are UTC)."""
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise fail("missing_timezone", f"{what} {value.isoformat()} has no time zone offset")


def check_not_future(value: datetime | date, what: str) -> None:
    check_aware(value, what)
    now = now_utc()
    limit: datetime | date = now + CLOCK_SKEW if isinstance(value, datetime) else now.date()
    if value > limit:
        raise fail("date_in_future", f"{what} {value.isoformat()} is in the future")


def check_order(earlier: datetime | date, later: datetime | date, what: str) -> None:
    check_aware(earlier, what)
    check_aware(later, what)
    if later < earlier:
        raise fail("dates_out_of_order", what)


def check_icd10(code: str | None) -> None:
    if code is not None and not ICD10.match(code):
        raise fail("invalid_icd10", f"{code!r} is not an ICD-10 code")


def normalise_name(value: str | None) -> str | None:
    return None if value is None else clean_name(value)


class Record(BaseModel):
    """A model of one Avro record (``SCHEMA`` is its full name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    SCHEMA: ClassVar[str]

    def to_avro(self) -> dict[str, Any]:
        return self.model_dump()


class SourceEvent(Record):
    """Fields every source event carries, and the rules on them."""

    TOPIC: ClassVar[SourceTopic]
    EVENT_TYPE: ClassVar[EventType]
    NAME_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Fields of prose rather than codes: longer limit (hub/domain/text.py).
    FREE_TEXT: ClassVar[frozenset[str]] = frozenset()

    event_id: UUID
    source_system: str = Field(min_length=1)
    occurred_at: datetime
    code_system: CodeSystem
    province_code: str
    district_code: str | None = None
    commune_code: str

    @model_validator(mode="before")
    @classmethod
    def _hygiene(cls, data: Any) -> Any:
        """Text hygiene (hub/domain/text.py) on every string field, before its type is checked
        (other types get pydantic's type error)."""
        return record_hygiene(data, cls.model_fields, cls.__name__, names=cls.NAME_FIELDS,
                              free_text=cls.FREE_TEXT)  # fmt: skip

    @model_validator(mode="after")
    def _common_rules(self) -> Self:
        check_not_future(self.occurred_at, "occurred_at")
        problem = admin_units().exists(
            self.code_system, self.province_code, self.commune_code, self.district_code
        )
        if problem:
            raise fail("unknown_admin_unit", problem)
        return self

    def subject_id(self) -> str:
        """The Kafka key: the subject's personal ID (the dossier code for dossiers)."""
        raise NotImplementedError


class ProcedureDossierEvent(SourceEvent):
    SCHEMA = f"{NS}.ProcedureDossierEvent"
    TOPIC = SourceTopic.DOSSIER
    EVENT_TYPE = EventType.PROCEDURE_DOSSIER

    dossier_code: str = Field(min_length=1)
    procedure_code: str = Field(min_length=1)
    status: DossierStatus
    channel: Channel
    applicant_id: str | None = None
    received_at: datetime
    due_at: datetime
    completed_at: datetime | None = None
    receiving_level: ReceivingLevel | None = None

    @model_validator(mode="after")
    def _dossier_rules(self) -> Self:
        check_personal_id(self.applicant_id, who="applicant")
        check_not_future(self.received_at, "received_at")
        check_order(self.received_at, self.due_at, "due_at is before received_at")
        if self.completed_at is not None:
            check_not_future(self.completed_at, "completed_at")
            check_order(self.received_at, self.completed_at, "completed_at is before received_at")
        if self.status is DossierStatus.COMPLETED and self.completed_at is None:
            raise fail("missing_field", "a COMPLETED dossier needs completed_at")
        return self

    def subject_id(self) -> str:
        return self.dossier_code


# Combinations of procedures the applicant may choose with a death registration (Decision
# 296/QĐ-VPCP, 2024, publishing the procedures of Decree 63/2024: "two, three or four"
# procedures; residence removal always comes with an interconnected death registration).
DEATH_GROUPS: frozenset[frozenset[DeathProcedure]] = frozenset({
    frozenset({DeathProcedure.RESIDENCE_REMOVAL}),
    frozenset({DeathProcedure.RESIDENCE_REMOVAL, DeathProcedure.FUNERAL_ALLOWANCE}),
    frozenset({DeathProcedure.RESIDENCE_REMOVAL, DeathProcedure.FUNERAL_ALLOWANCE,
               DeathProcedure.SURVIVOR_BENEFIT}),
})  # fmt: skip


class Interconnection(BaseModel):
    """The interconnected dossier a registration belongs to (hồ sơ liên thông), as the National
    Public Service Portal / interconnection software received it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    FREE_TEXT: ClassVar[frozenset[str]] = frozenset()

    dossier_code: str = Field(min_length=1)
    applicant_id: str
    received_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _hygiene(cls, data: Any) -> Any:
        return record_hygiene(data, cls.model_fields, cls.__name__, free_text=cls.FREE_TEXT,
                              prefix="interconnection.")  # fmt: skip

    @model_validator(mode="after")
    def _interconnection_rules(self) -> Self:
        check_personal_id(self.applicant_id, who="applicant")
        check_not_future(self.received_at, "interconnection.received_at")
        return self


class BirthInterconnection(Interconnection):
    FREE_TEXT = frozenset({"residence_address"})

    procedures: list[BirthProcedure] = Field(min_length=1)
    # For the police (residence registration): where, and in whose household.
    residence_address: str | None = None
    household_head_id: str | None = None
    household_relationship: str | None = None
    collective_household: bool = False
    # For Social Insurance (first health-insurance card): initial care facility, guardian.
    initial_care_facility: str | None = None
    guardian_id: str | None = None

    @model_validator(mode="after")
    def _birth_choice(self) -> Self:
        if len(set(self.procedures)) != len(self.procedures):
            raise fail("invalid_procedure_group", "a procedure is chosen twice")
        check_personal_id(self.household_head_id, who="household head")
        check_personal_id(self.guardian_id, who="guardian")
        return self


class DeathInterconnection(Interconnection):
    procedures: list[DeathProcedure] = Field(min_length=1)
    beneficiary_category: BeneficiaryCategory = BeneficiaryCategory.NONE
    # Where the funeral allowance / survivor benefit is paid.
    payment_account: str | None = None

    @model_validator(mode="after")
    def _death_choice(self) -> Self:
        if frozenset(self.procedures) not in DEATH_GROUPS or len(set(self.procedures)) != len(
            self.procedures
        ):
            raise fail(
                "invalid_procedure_group",
                "the death group is residence removal, then "
                "+ funeral allowance, then + survivor benefit (Decision 296/QĐ-VPCP)",
            )
        return self


class BirthRegistration(SourceEvent):
    SCHEMA = f"{NS}.BirthRegistration"
    TOPIC = SourceTopic.BIRTH
    EVENT_TYPE = EventType.CIVIL_BIRTH
    NAME_FIELDS = ("child_full_name",)
    FREE_TEXT = frozenset({"place_of_birth"})

    registration_number: str = Field(min_length=1)
    child_id: str
    child_full_name: str
    child_sex: Sex
    child_date_of_birth: date
    place_of_birth: str = Field(min_length=1)
    mother_id: str | None = None
    father_id: str | None = None
    birth_weight_grams: int | None = Field(default=None, gt=0, lt=10_000)
    origin: RecordOrigin = RecordOrigin.LIVE
    interconnection: BirthInterconnection | None = None

    @model_validator(mode="after")
    def _birth_rules(self) -> Self:
        check_not_future(self.child_date_of_birth, "child_date_of_birth")
        check_order(self.child_date_of_birth, self.occurred_at.date(), "registered before birth")
        check_personal_id(self.child_id, self.child_sex, self.child_date_of_birth, "child")
        check_personal_id(self.mother_id, Sex.FEMALE, who="mother")
        check_personal_id(self.father_id, Sex.MALE, who="father")
        return self

    def subject_id(self) -> str:
        return self.child_id


class DeathRegistration(SourceEvent):
    SCHEMA = f"{NS}.DeathRegistration"
    TOPIC = SourceTopic.DEATH
    EVENT_TYPE = EventType.CIVIL_DEATH
    NAME_FIELDS = ("deceased_full_name",)

    registration_number: str = Field(min_length=1)
    deceased_id: str
    deceased_full_name: str
    deceased_sex: Sex
    deceased_date_of_birth: date
    date_of_death: date
    cause_icd10: str | None = None
    declarant_id: str | None = None
    origin: RecordOrigin = RecordOrigin.LIVE
    interconnection: DeathInterconnection | None = None

    @model_validator(mode="after")
    def _death_rules(self) -> Self:
        check_not_future(self.date_of_death, "date_of_death")
        check_order(self.deceased_date_of_birth, self.date_of_death, "death before birth")
        check_order(self.date_of_death, self.occurred_at.date(), "registered before death")
        check_personal_id(
            self.deceased_id, self.deceased_sex, self.deceased_date_of_birth, "deceased"
        )
        check_personal_id(self.declarant_id, who="declarant")
        check_icd10(self.cause_icd10)
        return self

    def subject_id(self) -> str:
        return self.deceased_id


class MarriageRegistration(SourceEvent):
    SCHEMA = f"{NS}.MarriageRegistration"
    TOPIC = SourceTopic.MARRIAGE
    EVENT_TYPE = EventType.CIVIL_MARRIAGE
    NAME_FIELDS = ("spouse_a_full_name", "spouse_b_full_name")

    registration_number: str = Field(min_length=1)
    spouse_a_id: str
    spouse_a_full_name: str
    spouse_b_id: str
    spouse_b_full_name: str
    marriage_date: date

    @model_validator(mode="after")
    def _marriage_rules(self) -> Self:
        check_not_future(self.marriage_date, "marriage_date")
        check_personal_id(self.spouse_a_id, who="spouse A")
        check_personal_id(self.spouse_b_id, who="spouse B")
        if self.spouse_a_id == self.spouse_b_id:
            raise fail("invalid_personal_id", "both spouses have the same personal ID")
        return self

    def subject_id(self) -> str:
        return self.spouse_a_id


class HealthEvent(SourceEvent):
    """Fields of every health event (FHIR-shaped)."""

    NAME_FIELDS = ("patient_full_name",)

    facility_code: str = Field(min_length=1)
    patient_id: str
    patient_full_name: str | None = None
    patient_sex: Sex | None = None
    patient_date_of_birth: date | None = None

    @model_validator(mode="after")
    def _patient_rules(self) -> Self:
        check_personal_id(self.patient_id, self.patient_sex, self.patient_date_of_birth, "patient")
        return self

    def subject_id(self) -> str:
        return self.patient_id


class HealthEncounter(HealthEvent):
    SCHEMA = f"{NS}.HealthEncounter"
    TOPIC = SourceTopic.ENCOUNTER
    EVENT_TYPE = EventType.HEALTH_ENCOUNTER

    patient_full_name: str
    patient_sex: Sex
    patient_date_of_birth: date
    encounter_id: str = Field(min_length=1)
    encounter_class: EncounterClass
    status: EncounterStatus
    period_start: datetime
    period_end: datetime | None = None
    primary_diagnosis_icd10: str
    secondary_diagnoses_icd10: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _encounter_rules(self) -> Self:
        check_not_future(self.period_start, "period_start")
        if self.period_end is not None:
            check_order(self.period_start, self.period_end, "period_end is before period_start")
        for code in [self.primary_diagnosis_icd10, *self.secondary_diagnoses_icd10]:
            check_icd10(code)
        return self


class HealthReferral(HealthEvent):
    SCHEMA = f"{NS}.HealthReferral"
    TOPIC = SourceTopic.REFERRAL
    EVENT_TYPE = EventType.HEALTH_REFERRAL

    referral_id: str = Field(min_length=1)
    to_facility_code: str = Field(min_length=1)
    reason_icd10: str
    priority: ReferralPriority

    @field_validator("reason_icd10")
    @classmethod
    def _icd(cls, value: str) -> str:
        check_icd10(value)
        return value


class HealthAppointment(HealthEvent):
    SCHEMA = f"{NS}.HealthAppointment"
    TOPIC = SourceTopic.APPOINTMENT
    EVENT_TYPE = EventType.HEALTH_APPOINTMENT

    appointment_id: str = Field(min_length=1)
    status: AppointmentStatus
    start: datetime
    reason_icd10: str | None = None
    based_on_encounter_id: str | None = None

    @field_validator("reason_icd10")
    @classmethod
    def _icd(cls, value: str | None) -> str | None:
        check_icd10(value)
        return value


class HealthLabResult(HealthEvent):
    SCHEMA = f"{NS}.HealthLabResult"
    TOPIC = SourceTopic.LAB_RESULT
    EVENT_TYPE = EventType.HEALTH_LAB_RESULT
    FREE_TEXT = frozenset({"display", "value_string", "unit"})

    observation_id: str = Field(min_length=1)
    loinc_code: str = Field(pattern=r"^[0-9]{1,7}-[0-9]$")
    display: str = Field(min_length=1)
    status: ObservationStatus
    value_quantity: float | None = None
    unit: str | None = None
    value_string: str | None = None
    interpretation: Interpretation | None = None
    effective_at: datetime

    @model_validator(mode="after")
    def _result_rules(self) -> Self:
        check_not_future(self.effective_at, "effective_at")
        check_order(self.effective_at, self.occurred_at, "result issued before the specimen")
        if self.value_quantity is None and self.value_string is None:
            raise fail("missing_field", "a lab result needs value_quantity or value_string")
        return self


SOURCE_MODELS: dict[SourceTopic, type[SourceEvent]] = {
    m.TOPIC: m
    for m in (
        ProcedureDossierEvent,
        BirthRegistration,
        DeathRegistration,
        MarriageRegistration,
        HealthEncounter,
        HealthReferral,
        HealthAppointment,
        HealthLabResult,
    )
}
MODEL_OF_SCHEMA: dict[str, type[SourceEvent]] = {m.SCHEMA: m for m in SOURCE_MODELS.values()}
