"""Synthetic, reproducible traffic: a population register and the events of N provinces' systems.

Used by ``hub simulate``, the demo, the tests and the benchmarks. Everything derives from one
``random.Random(seed)``; the only outside input is the clock (``now``), passed in.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from hub.domain.enums import (
    AppointmentStatus,
    BeneficiaryCategory,
    BirthProcedure,
    CodeSystem,
    DeathProcedure,
    DossierStatus,
    EncounterClass,
    EncounterStatus,
    Interpretation,
    ObservationStatus,
    ReferralPriority,
    Sex,
)
from hub.domain.events import (
    BirthInterconnection,
    BirthRegistration,
    DeathInterconnection,
    DeathRegistration,
    HealthAppointment,
    HealthEncounter,
    HealthLabResult,
    HealthReferral,
    MarriageRegistration,
    ProcedureDossierEvent,
    SourceEvent,
)
from hub.domain.personal_id import make_personal_id
from hub.domain.records import PopulationRecord
from hub.domain.topics import POPULATION_TOPIC, SourceTopic
from hub.domain.units import admin_units
from hub.sim.dossiers import DossierPlan, plan_dossier
from hub.wire.codec import Codec

# Synthetic names only (not reference data): common Vietnamese family, middle and given names.
FAMILY = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
]
MIDDLE = {
    Sex.MALE: ["Văn", "Hữu", "Đức", "Minh", "Quang", "Thành"],
    Sex.FEMALE: ["Thị", "Ngọc", "Thu", "Thanh"],
}
GIVEN = {
    Sex.MALE: [
        "An",
        "Bình",
        "Dũng",
        "Hải",
        "Hùng",
        "Khánh",
        "Long",
        "Nam",
        "Phúc",
        "Quân",
        "Sơn",
        "Thắng",
        "Tuấn",
        "Việt",
    ],
    Sex.FEMALE: [
        "Anh",
        "Chi",
        "Hà",
        "Hạnh",
        "Hoa",
        "Hương",
        "Lan",
        "Linh",
        "Mai",
        "Nga",
        "Phương",
        "Thảo",
        "Trang",
        "Yến",
    ],
}
ICD10_CODES = [
    "J06.9",
    "I10",
    "E11.9",
    "K29.7",
    "A09",
    "J18.9",
    "M54.5",
    "N39.0",
    "R50.9",
    "S52.5",
    "O80",
    "Z00.0",
]
LOINC = [
    ("718-7", "Hemoglobin", "g/dL"),
    ("2345-7", "Glucose", "mg/dL"),
    ("2160-0", "Creatinine", "mg/dL"),
]

# Share of each source in realistic traffic (dossiers dominate; deaths are rare).
MIX: dict[SourceTopic, float] = {
    SourceTopic.DOSSIER: 0.35,
    SourceTopic.BIRTH: 0.08,
    SourceTopic.DEATH: 0.04,
    SourceTopic.MARRIAGE: 0.05,
    SourceTopic.ENCOUNTER: 0.20,
    SourceTopic.REFERRAL: 0.08,
    SourceTopic.APPOINTMENT: 0.10,
    SourceTopic.LAB_RESULT: 0.10,
}

# Poison kinds, each with the dead-letter reason the hub must give it.
POISON_REASONS: dict[str, str] = {
    "not_avro": "bad_magic",
    "empty": "empty_message",
    "unknown_fingerprint": "unknown_fingerprint",
    "truncated": "corrupt_datum",
    "invalid_personal_id": "invalid_personal_id",
    "date_in_future": "date_in_future",
    "unknown_admin_unit": "unknown_admin_unit",
    "invalid_icd10": "invalid_icd10",
    # A NUL inside a name, as fixed-width exports of old registry software leave them.
    "nul_in_name": "control_character",
}


# What applicants choose with a registration (shares for the simulation, not statistics): most
# parents of a newborn ask for residence and the child's card; many death dossiers also claim
# the funeral allowance. None: registration only.
BIRTH_CHOICES: list[tuple[tuple[BirthProcedure, ...] | None, float]] = [
    (None, 0.15),
    ((BirthProcedure.RESIDENCE_REGISTRATION,), 0.20),
    ((BirthProcedure.HEALTH_INSURANCE_CARD,), 0.15),
    ((BirthProcedure.RESIDENCE_REGISTRATION, BirthProcedure.HEALTH_INSURANCE_CARD), 0.50),
]
DEATH_CHOICES: list[tuple[tuple[DeathProcedure, ...] | None, float]] = [
    (None, 0.20),
    ((DeathProcedure.RESIDENCE_REMOVAL,), 0.30),
    ((DeathProcedure.RESIDENCE_REMOVAL, DeathProcedure.FUNERAL_ALLOWANCE), 0.35),
    ((DeathProcedure.RESIDENCE_REMOVAL, DeathProcedure.FUNERAL_ALLOWANCE,
      DeathProcedure.SURVIVOR_BENEFIT), 0.15),
]  # fmt: skip
BENEFICIARIES = [(BeneficiaryCategory.SOCIAL_INSURANCE, 0.5), (BeneficiaryCategory.NONE, 0.2),
                 (BeneficiaryCategory.SOCIAL_PROTECTION, 0.2),
                 (BeneficiaryCategory.MERITORIOUS, 0.1)]  # fmt: skip


T = TypeVar("T")


def _ms(moment: datetime) -> datetime:
    """Truncate to milliseconds, the precision of Avro timestamp-millis."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Message:
    """A message ready to produce; ``poison`` names the failure kind, if any."""

    topic: str
    key: bytes
    value: bytes
    event_id: str | None
    poison: str | None = None

    @property
    def expected_reason(self) -> str | None:
        return POISON_REASONS[self.poison] if self.poison else None


class Traffic:
    """Generator of a population register and source events for ``provinces`` (2025 codes)."""

    def __init__(
        self,
        codec: Codec,
        seed: int = 1,
        provinces: int = 5,
        population: int = 2000,
        now: datetime | None = None,
        stale_share: float = 0.005,
        late_dossier_share: float = 0.02,
    ) -> None:
        """``now`` fixes the clock (tests); by default events occur when they are generated.
        ``stale_share`` of events occurred 10–60 minutes before they are sent (late systems),
        which the "alive" quality dimension must notice. ``late_dossier_share`` of interconnected
        dossiers were received weeks before (their agency steps are overdue unless answered)."""
        self.codec = codec
        self.rng = random.Random(seed)
        self.late_dossier_share = late_dossier_share
        self.fixed_now = _ms(now) if now else None
        self.stale_share = stale_share
        self.now = self.fixed_now or _ms(datetime.now(UTC))
        units = admin_units()
        codes = sorted(units.provinces)
        self.province_codes = sorted(self.rng.sample(codes, min(provinces, len(codes))))
        self.communes: dict[str, list[str]] = {p: [] for p in self.province_codes}
        for unit in units.communes.values():
            if unit.province_code in self.communes:
                self.communes[unit.province_code].append(unit.code)
        self.legacy: dict[str, list[tuple[str, str, str]]] = {p: [] for p in self.province_codes}
        for conv in units.conversions.values():
            if conv.province and conv.province.code in self.legacy and conv.commune:
                old = units.legacy_communes[conv.legacy_commune]
                self.legacy[conv.province.code].append(
                    (old.province_code, old.district_code, old.code)
                )
        for lists in (self.communes, self.legacy):
            for values in lists.values():
                values.sort()
        self.birth_codes = sorted(units.birth_province_codes())
        self.people: list[PopulationRecord] = [self._person() for _ in range(population)]
        self._dossiers = 0
        self._dossier_queue: list[ProcedureDossierEvent] = []
        self.dossier_plans: list[DossierPlan] = []

    # ---- people and places -------------------------------------------------------------
    def _name(self, sex: Sex) -> str:
        r = self.rng
        return f"{r.choice(FAMILY)} {r.choice(MIDDLE[sex])} {r.choice(GIVEN[sex])}"

    def _new_id(self, sex: Sex, dob: date) -> str:
        serial = self.rng.randrange(1_000_000)
        return make_personal_id(self.rng.choice(self.birth_codes), sex, dob, serial)

    def _person(self, dob: date | None = None) -> PopulationRecord:
        sex = self.rng.choice([Sex.MALE, Sex.FEMALE])
        born = dob or date(1940, 1, 1) + timedelta(days=self.rng.randrange(80 * 365))
        province = self.rng.choice(self.province_codes)
        return PopulationRecord(
            personal_id=self._new_id(sex, born),
            full_name=self._name(sex),
            sex=sex,
            date_of_birth=born,
            province_code=province,
            commune_code=self.rng.choice(self.communes[province]),
            updated_at=self.now,
        )

    def _place(self, province: str | None = None) -> dict[str, Any]:
        """Location fields: half the systems have migrated to 2025 codes, half send legacy."""
        province = province or self.rng.choice(self.province_codes)
        if self.rng.random() < 0.5 or not self.legacy[province]:
            return {
                "code_system": CodeSystem.V2025,
                "province_code": province,
                "district_code": None,
                "commune_code": self.rng.choice(self.communes[province]),
            }
        p, d, c = self.rng.choice(self.legacy[province])
        return {"code_system": CodeSystem.LEGACY, "province_code": p, "district_code": d,
                "commune_code": c}  # fmt: skip

    def _occurred(self) -> datetime:
        self.now = self.fixed_now or _ms(datetime.now(UTC))
        if self.stale_share and self.rng.random() < self.stale_share:
            return _ms(self.now - timedelta(minutes=self.rng.uniform(10, 60)))
        return self.now

    def _common(self, system: str, province: str | None = None) -> dict[str, Any]:
        place = self._place(province)
        return {
            "event_id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
            "source_system": f"{system}-{place['province_code']}",
            "occurred_at": self._occurred(),
            **place,
        }

    def register_messages(self, topic: str = POPULATION_TOPIC) -> Iterator[Message]:
        """The population register for ``ref.population.v1`` (keyed by personal ID)."""
        for person in self.people:
            yield Message(
                topic,
                person.personal_id.encode(),
                self.codec.encode(PopulationRecord.SCHEMA, person.to_avro()),
                None,
            )

    # ---- events ------------------------------------------------------------------------
    def event(self, topic: SourceTopic | None = None) -> SourceEvent:
        """One valid source event (of ``topic``, or drawn from the realistic mix)."""
        if topic is None:
            topic = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        return _BUILDERS[topic](self)

    def message(self, event: SourceEvent) -> Message:
        return Message(
            event.TOPIC.value,
            event.subject_id().encode(),
            self.codec.encode(event.SCHEMA, event.to_avro()),
            str(event.event_id),
        )

    def poison(self, kind: str) -> Message:
        """A message that must be dead-lettered with ``POISON_REASONS[kind]``."""
        event = self.event(SourceTopic.BIRTH if kind != "invalid_icd10" else SourceTopic.REFERRAL)
        record = event.to_avro()
        good = self.codec.encode(event.SCHEMA, record)
        if kind == "not_avro":
            value = b"{" + self.rng.randbytes(30)
        elif kind == "empty":
            value = b""
        elif kind == "unknown_fingerprint":
            value = good[:2] + bytes(8) + good[10:]
        elif kind == "truncated":
            value = good[: len(good) // 2]
        else:
            if kind == "invalid_personal_id":
                record["child_id"] = "12345"
            elif kind == "date_in_future":
                record["occurred_at"] = self.now + timedelta(days=3)
            elif kind == "unknown_admin_unit":
                record["commune_code"] = "99999"
            elif kind == "invalid_icd10":
                record["reason_icd10"] = "XYZ"
            elif kind == "nul_in_name":
                name = str(record["child_full_name"])
                record["child_full_name"] = name[:4] + "\x00" + name[4:]
            value = self.codec.encode(event.SCHEMA, record)
        return Message(event.TOPIC.value, event.subject_id().encode(), value,
                       str(event.event_id), poison=kind)  # fmt: skip

    def stream(self, count: int, poison_share: float = 0.0) -> Iterator[Message]:
        """``count`` messages; about ``poison_share`` of them poison, kinds in rotation."""
        kinds = list(POISON_REASONS)
        for i in range(count):
            if poison_share and self.rng.random() < poison_share:
                yield self.poison(kinds[i % len(kinds)])
            else:
                yield self.message(self.event())

    def scheduled(self, count: int, rate: float, begin: datetime) -> Iterator[Message]:
        """``count`` messages of the mix, the i-th occurring at ``begin + i / rate`` (to the
        millisecond, never after): live traffic encoded ahead, for a producer that sends each one
        at the moment it occurred (the latency bench, whose producer then costs only Kafka's
        client while the worker is measured)."""
        saved = self.fixed_now
        try:
            for i in range(count):
                self.fixed_now = _ms(begin + timedelta(seconds=i / rate))
                yield self.message(self.event())
        finally:
            self.fixed_now = saved

    # ---- builders per source -----------------------------------------------------------
    def _pick(self, accept: Callable[[PopulationRecord], bool]) -> PopulationRecord | None:
        """A random living person ``accept`` likes, or None after a bounded number of draws."""
        found = self._pick_at(accept)
        return None if found is None else self.people[found]

    def _pick_at(self, accept: Callable[[PopulationRecord], bool]) -> int | None:
        """Where in ``people`` :meth:`_pick`'s person is (the same draws)."""
        for _ in range(1000):
            at = self.rng.randrange(len(self.people))  # what rng.choice draws
            person = self.people[at]
            if not person.deceased and accept(person):
                return at
        return None

    def _living(self) -> PopulationRecord:
        return self.people[self._living_at()]

    def _living_at(self) -> int:
        at = self._pick_at(lambda _: True)
        if at is None:
            raise RuntimeError("the synthetic population has died out: use a larger population")
        return at

    def _dossier(self) -> ProcedureDossierEvent:
        """The next status change of a simulated dossier (hub/sim/dossiers.py): dossiers are
        drawn whole and their steps that have happened by now are sent in order."""
        if not self._dossier_queue:
            plan = self.new_dossier()
            self._dossier_queue.extend(self.dossier_events(plan))
        return self._dossier_queue.pop(0)

    def new_dossier(self) -> DossierPlan:
        r = self.rng
        self._dossiers += 1
        # Public-service portals were migrated to the 2025 codes first: dossiers use them.
        province = r.choice(self.province_codes)
        plan = plan_dossier(r, self.now, f"H{province}.{r.randrange(10**8):08d}", province,
                            r.choice(self.communes[province]),
                            self._living().personal_id)  # fmt: skip
        self.dossier_plans.append(plan)
        return plan

    def dossier_events(self, plan: DossierPlan) -> list[ProcedureDossierEvent]:
        """One event per step of ``plan`` that has happened by now."""
        events = []
        for status, at in plan.until(self.now):
            completed = at if status is DossierStatus.COMPLETED else None
            events.append(ProcedureDossierEvent(
                event_id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
                source_system=f"dvc-{plan.province_code}", occurred_at=at,
                code_system=CodeSystem.V2025, province_code=plan.province_code,
                commune_code=plan.commune_code, dossier_code=plan.code,
                procedure_code=plan.procedure_code, status=status, channel=plan.channel,
                applicant_id=plan.applicant_id, received_at=plan.received_at,
                due_at=plan.due_at, completed_at=completed, receiving_level=plan.receiving_level,
            ))  # fmt: skip
        return events

    def _birth(self) -> BirthRegistration:
        r = self.rng
        common = self._common("hotich")
        dob = common["occurred_at"].date() - timedelta(days=r.randrange(0, 60))
        child = self._person(dob)
        adult = dob - timedelta(days=16 * 365)
        mother = self._pick(lambda p: p.sex is Sex.FEMALE and p.date_of_birth < adult)
        self.people.append(child)  # the pipeline adds the newborn to the register too
        choice = self._choose(BIRTH_CHOICES)
        interconnection = None
        if choice is not None and mother is not None:
            interconnection = BirthInterconnection(
                **self._dossier_receipt(common["occurred_at"]),
                applicant_id=mother.personal_id,
                procedures=list(choice),
                residence_address=f"Số {r.randrange(1, 300)}, tổ {r.randrange(1, 40)}",
                household_head_id=mother.personal_id,
                household_relationship="Con",
                initial_care_facility=f"{common['province_code']}{r.randrange(1, 99):03d}",
                guardian_id=mother.personal_id,
            )
        return BirthRegistration(
            **common,
            registration_number=f"{r.randrange(1, 999)}/{dob.year}",
            child_id=child.personal_id,
            child_full_name=child.full_name,
            child_sex=child.sex,
            child_date_of_birth=dob,
            place_of_birth="Bệnh viện đa khoa tỉnh",
            mother_id=mother.personal_id if mother else None,
            birth_weight_grams=r.randrange(2200, 4200),
            interconnection=interconnection,
        )

    def _death(self) -> DeathRegistration:
        r = self.rng
        at = self._living_at()
        person = self.people[at]
        common = self._common("hotich", person.province_code)
        if person.date_of_birth > common["occurred_at"].date():
            # A stale timestamp from before midnight (UTC), a person born since (a newborn of
            # this run): no registration of a death comes before the birth; it is current.
            common["occurred_at"] = self.now
        person_dead = person.model_copy(update={"deceased": True})
        self.people[at] = person_dead  # (an index() search compared every model: slow)
        choice = self._choose(DEATH_CHOICES)
        declarant = self._living()
        interconnection = None
        if choice is not None:
            interconnection = DeathInterconnection(
                **self._dossier_receipt(common["occurred_at"]),
                applicant_id=declarant.personal_id,
                procedures=list(choice),
                beneficiary_category=self._choose(BENEFICIARIES),
                payment_account=f"{r.randrange(10**9, 10**10)}",
            )
        return DeathRegistration(
            **common,
            registration_number=f"{r.randrange(1, 999)}/{self.now.year}",
            deceased_id=person.personal_id,
            deceased_full_name=person.full_name,
            deceased_sex=person.sex,
            deceased_date_of_birth=person.date_of_birth,
            date_of_death=max(
                person.date_of_birth,
                common["occurred_at"].date() - timedelta(days=r.randrange(0, 5)),
            ),
            cause_icd10=r.choice([None, "I21.9", "C34.9"]),
            declarant_id=declarant.personal_id if interconnection else None,
            interconnection=interconnection,
        )

    def _choose(self, weighted: list[tuple[T, float]]) -> T:
        return self.rng.choices([c for c, _ in weighted], weights=[w for _, w in weighted])[0]

    def _dossier_receipt(self, registered: datetime) -> dict[str, Any]:
        """The interconnected dossier: received a little before its registration; a few were
        received weeks ago (late registrations: their agency steps are due already)."""
        late = self.rng.random() < self.late_dossier_share
        received = registered - timedelta(days=self.rng.randrange(14, 40) if late else 0,
                                          minutes=self.rng.randrange(0, 240))  # fmt: skip
        return {"dossier_code": f"LT-{self.rng.getrandbits(40):010X}",
                "received_at": _ms(received)}  # fmt: skip

    def _marriage(self) -> MarriageRegistration:
        a, b = self._living(), self._living()
        while b.personal_id == a.personal_id:
            b = self._living()
        return MarriageRegistration(
            **self._common("hotich"),
            registration_number=f"{self.rng.randrange(1, 999)}/{self.now.year}",
            spouse_a_id=a.personal_id,
            spouse_a_full_name=a.full_name,
            spouse_b_id=b.personal_id,
            spouse_b_full_name=b.full_name,
            marriage_date=self.now.date(),
        )

    def _health(self, system: str = "his") -> tuple[dict[str, Any], PopulationRecord]:
        person = self._living()
        common = self._common(system)
        common.update(
            facility_code=f"{common['province_code']}{self.rng.randrange(1, 200):03d}",
            patient_id=person.personal_id,
        )
        return common, person

    def _encounter(self) -> HealthEncounter:
        common, p = self._health()
        start = _ms(common["occurred_at"] - timedelta(hours=self.rng.uniform(0, 48)))
        return HealthEncounter(
            **common,
            patient_full_name=p.full_name,
            patient_sex=p.sex,
            patient_date_of_birth=p.date_of_birth,
            encounter_id=f"E{self.rng.randrange(10**9)}",
            encounter_class=self.rng.choice(list(EncounterClass)),
            status=EncounterStatus.FINISHED,
            period_start=start,
            period_end=common["occurred_at"],
            primary_diagnosis_icd10=self.rng.choice(ICD10_CODES),
            secondary_diagnoses_icd10=self.rng.sample(ICD10_CODES, self.rng.randrange(0, 3)),
        )

    def _referral(self) -> HealthReferral:
        common, p = self._health()
        return HealthReferral(
            **common,
            patient_full_name=p.full_name,
            referral_id=f"R{self.rng.randrange(10**9)}",
            to_facility_code=f"{common['province_code']}001",
            reason_icd10=self.rng.choice(ICD10_CODES),
            priority=self.rng.choice(list(ReferralPriority)),
        )

    def _appointment(self) -> HealthAppointment:
        common, _ = self._health()
        return HealthAppointment(
            **common,
            appointment_id=f"A{self.rng.randrange(10**9)}",
            status=AppointmentStatus.BOOKED,
            start=common["occurred_at"] + timedelta(days=self.rng.randrange(7, 60)),
            reason_icd10=self.rng.choice(ICD10_CODES),
        )

    def _lab(self) -> HealthLabResult:
        common, p = self._health()
        code, display, unit = self.rng.choice(LOINC)
        return HealthLabResult(
            **common,
            patient_sex=p.sex,
            patient_date_of_birth=p.date_of_birth,
            observation_id=f"O{self.rng.randrange(10**9)}",
            loinc_code=code,
            display=display,
            status=ObservationStatus.FINAL,
            value_quantity=round(self.rng.uniform(1, 200), 1),
            unit=unit,
            interpretation=self.rng.choice(list(Interpretation)),
            effective_at=common["occurred_at"] - timedelta(hours=2),
        )


_BUILDERS = {
    SourceTopic.DOSSIER: Traffic._dossier,
    SourceTopic.BIRTH: Traffic._birth,
    SourceTopic.DEATH: Traffic._death,
    SourceTopic.MARRIAGE: Traffic._marriage,
    SourceTopic.ENCOUNTER: Traffic._encounter,
    SourceTopic.REFERRAL: Traffic._referral,
    SourceTopic.APPOINTMENT: Traffic._appointment,
    SourceTopic.LAB_RESULT: Traffic._lab,
}
