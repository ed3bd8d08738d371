"""The six data-quality dimensions of the design, scored per event (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hub.domain.enums import CodeSystem
from hub.domain.events import (
    BirthRegistration,
    DeathRegistration,
    HealthAppointment,
    HealthEncounter,
    HealthLabResult,
    HealthReferral,
    ProcedureDossierEvent,
    SourceEvent,
)
from hub.domain.records import QualityFlags

DIMENSIONS = ("correct", "sufficient", "clean", "alive", "unified", "shared")

# Optional fields a complete record is expected to carry ("sufficient" data).
EXPECTED: dict[type[SourceEvent], tuple[str, ...]] = {
    ProcedureDossierEvent: ("applicant_id",),
    BirthRegistration: ("mother_id",),
    DeathRegistration: ("cause_icd10",),
    HealthEncounter: ("period_end",),
    HealthReferral: ("patient_full_name",),
    HealthAppointment: ("reason_icd10",),
    HealthLabResult: ("interpretation",),
}


def score(
    event: SourceEvent,
    identity_issues: list[str],
    duplicate: bool,
    ingested_at: datetime,
    freshness: timedelta,
) -> QualityFlags:
    issues = [f"missing_{name}" for name in EXPECTED.get(type(event), ())
              if getattr(event, name) is None]  # fmt: skip
    sufficient = not issues
    issues += identity_issues
    if duplicate:
        issues.append("duplicate")
    late = ingested_at - event.occurred_at > freshness
    if late:
        issues.append("stale")
    unified = event.code_system is CodeSystem.V2025
    if not unified:
        issues.append("legacy_codes_converted")
    return QualityFlags(
        correct=True,
        sufficient=sufficient,
        clean=not duplicate and not identity_issues,
        alive=not late,
        unified=unified,
        shared=True,
        issues=issues,
    )
