"""Closed value sets shared by the models; each mirrors an Avro enum of the same name."""

from __future__ import annotations

from enum import StrEnum


class CodeSystem(StrEnum):
    """Avro ``AdminCodeSystem``: legacy (63 provinces) or 2025 (34 provinces, 2 levels)."""

    LEGACY = "LEGACY"
    V2025 = "V2025"


class Sex(StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"


class DossierStatus(StrEnum):
    RECEIVED = "RECEIVED"
    ACCEPTED = "ACCEPTED"
    IN_PROGRESS = "IN_PROGRESS"
    SUPPLEMENT_REQUESTED = "SUPPLEMENT_REQUESTED"
    COMPLETED = "COMPLETED"
    RETURNED = "RETURNED"


class Channel(StrEnum):
    """How a dossier was received (Decree 42/2022 on online public services: partial and full
    online service). ONLINE: online, kind not said (v1 writers)."""

    ONLINE = "ONLINE"
    IN_PERSON = "IN_PERSON"
    ONLINE_PARTIAL = "ONLINE_PARTIAL"
    ONLINE_FULL = "ONLINE_FULL"
    POSTAL = "POSTAL"


class EncounterClass(StrEnum):
    AMBULATORY = "AMBULATORY"
    INPATIENT = "INPATIENT"
    EMERGENCY = "EMERGENCY"


class EncounterStatus(StrEnum):
    PLANNED = "PLANNED"
    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"


class ReferralPriority(StrEnum):
    ROUTINE = "ROUTINE"
    URGENT = "URGENT"
    ASAP = "ASAP"
    STAT = "STAT"


class AppointmentStatus(StrEnum):
    PROPOSED = "PROPOSED"
    BOOKED = "BOOKED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"
    NOSHOW = "NOSHOW"


class ObservationStatus(StrEnum):
    REGISTERED = "REGISTERED"
    PRELIMINARY = "PRELIMINARY"
    FINAL = "FINAL"
    AMENDED = "AMENDED"


class Interpretation(StrEnum):
    NORMAL = "NORMAL"
    ABNORMAL = "ABNORMAL"
    CRITICAL = "CRITICAL"


class EventType(StrEnum):
    PROCEDURE_DOSSIER = "PROCEDURE_DOSSIER"
    CIVIL_BIRTH = "CIVIL_BIRTH"
    CIVIL_DEATH = "CIVIL_DEATH"
    CIVIL_MARRIAGE = "CIVIL_MARRIAGE"
    HEALTH_ENCOUNTER = "HEALTH_ENCOUNTER"
    HEALTH_REFERRAL = "HEALTH_REFERRAL"
    HEALTH_APPOINTMENT = "HEALTH_APPOINTMENT"
    HEALTH_LAB_RESULT = "HEALTH_LAB_RESULT"


class RecordOrigin(StrEnum):
    """Avro ``RecordOrigin``: why a civil-status record reaches the hub. Only a LIVE application
    can open an interconnection case; digitised book records and corrections never do."""

    LIVE = "LIVE"
    DIGITISED = "DIGITISED"
    CORRECTION = "CORRECTION"


class BirthProcedure(StrEnum):
    """Avro ``BirthProcedure``: procedures chosen with a birth registration (Decree 63/2024)."""

    RESIDENCE_REGISTRATION = "RESIDENCE_REGISTRATION"
    HEALTH_INSURANCE_CARD = "HEALTH_INSURANCE_CARD"


class DeathProcedure(StrEnum):
    """Avro ``DeathProcedure``: procedures chosen with a death registration (Decree 63/2024)."""

    RESIDENCE_REMOVAL = "RESIDENCE_REMOVAL"
    FUNERAL_ALLOWANCE = "FUNERAL_ALLOWANCE"
    SURVIVOR_BENEFIT = "SURVIVOR_BENEFIT"


class BeneficiaryCategory(StrEnum):
    """Avro ``BeneficiaryCategory``: who pays the deceased's funeral allowance and survivor
    benefit after the 2025 reorganisation (docs/WORKFLOWS.md)."""

    NONE = "NONE"
    SOCIAL_INSURANCE = "SOCIAL_INSURANCE"  # insured people and pensioners: Social Insurance
    SOCIAL_PROTECTION = "SOCIAL_PROTECTION"  # Decree 20/2021 beneficiaries: commune committee
    MERITORIOUS = "MERITORIOUS"  # Decree 131/2021 (người có công): provincial Home Affairs


class ReceivingLevel(StrEnum):
    """Avro ``ReceivingLevel``: the one-stop shop that received a dossier (2-level government
    from July 2025: province or commune)."""

    PROVINCE = "PROVINCE"
    COMMUNE = "COMMUNE"
