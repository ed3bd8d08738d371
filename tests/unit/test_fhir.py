"""FHIR R4 resources → hub health events, and OperationOutcomes that say why not."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.ingest.fhir import ICD10, LOINC, Facility, FhirConfig, FhirMapper
from hub.domain.events import HealthAppointment, HealthEncounter, HealthLabResult, HealthReferral
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec

TRAFFIC = Traffic(Codec(), seed=21, provinces=1, population=20)
PERSON = TRAFFIC.people[0]
PROVINCE = TRAFFIC.province_codes[0]
COMMUNE = TRAFFIC.communes[PROVINCE][0]
CONFIG = FhirConfig(
    facilities={
        "79001": Facility(province_code=PROVINCE, commune_code=COMMUNE),
        "79002": Facility(province_code=PROVINCE, commune_code=COMMUNE),
    }
)
SEX = {"MALE": "male", "FEMALE": "female"}


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": CONFIG.patient_system, "value": PERSON.personal_id}],
            "name": [{"text": PERSON.full_name}], "gender": SEX[PERSON.sex.value],
            "birthDate": PERSON.date_of_birth.isoformat()}  # fmt: skip


def org(code: str, rid: str) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": rid,
            "identifier": [{"system": CONFIG.facility_system, "value": code}]}  # fmt: skip


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r}
                      for i, r in enumerate([patient(), org("79001", "o1"), org("79002", "o2"),
                                             *resources])]}  # fmt: skip


ENCOUNTER = {
    "resourceType": "Encounter", "id": "enc-1", "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/p1"}, "serviceProvider": {"reference": "Organization/o1"},
    "period": {"start": "2026-11-20T08:00:00+07:00", "end": "2026-11-20T09:30:00+07:00"},
    "reasonCode": [{"coding": [{"system": ICD10, "code": "J45.9"}]},
                   {"coding": [{"system": ICD10, "code": "I10"}]}],
}  # fmt: skip


def test_an_encounter_in_a_bundle_becomes_a_health_encounter() -> None:
    out = FhirMapper(CONFIG).map(bundle(ENCOUNTER))
    assert out.issues == []
    [event] = out.events
    assert isinstance(event, HealthEncounter)
    assert (event.patient_id, event.facility_code) == (PERSON.personal_id, "79001")
    assert (event.province_code, event.commune_code) == (PROVINCE, COMMUNE)
    assert event.primary_diagnosis_icd10 == "J45.9"
    assert event.secondary_diagnoses_icd10 == ["I10"]
    assert event.encounter_class.value == "AMBULATORY" and event.status.value == "FINISHED"
    assert FhirMapper(CONFIG).map(bundle(ENCOUNTER)).events[0].event_id == event.event_id, (
        "the same resource sent again is the same event (deduplicated downstream)"
    )


def test_referral_appointment_and_a_report_with_its_observation() -> None:
    referral = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "active",
                "intent": "order", "priority": "urgent", "subject": {"reference": "Patient/p1"},
                "requester": {"reference": "Organization/o1"},
                "performer": [{"reference": "Organization/o2"}],
                "authoredOn": "2026-11-20T10:00:00+07:00",
                "reasonCode": [{"coding": [{"system": ICD10, "code": "I21.9"}]}]}  # fmt: skip
    appointment = {"resourceType": "Appointment", "id": "ap-1", "status": "booked",
                   "start": "2026-11-27T08:00:00+07:00", "end": "2026-11-27T08:30:00+07:00",
                   "created": "2026-11-20",
                   "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"},
                                   {"actor": {"reference": "Organization/o1"},
                                    "status": "accepted"}]}  # fmt: skip
    observation = {"resourceType": "Observation", "id": "ob-1", "status": "final",
                   "code": {"coding": [{"system": LOINC, "code": "2345-7",
                                        "display": "Glucose"}]},
                   "subject": {"reference": "Patient/p1"},
                   "performer": [{"reference": "Organization/o1"}],
                   "effectiveDateTime": "2026-11-20T07:00:00+07:00",
                   "valueQuantity": {"value": 9.1, "unit": "mmol/L"},
                   "interpretation": [{"coding": [{"code": "H"}]}]}  # fmt: skip
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr-1",
        "status": "final",
        "code": {"text": "Glucose panel"},
        "result": [{"reference": "urn:uuid:5"}],
    }
    out = FhirMapper(CONFIG).map(bundle(referral, appointment, observation, report))
    assert out.issues == []
    kinds = [type(e) for e in out.events]
    assert kinds == [HealthReferral, HealthAppointment, HealthLabResult], "observation once"
    ref, app, lab = out.events
    assert isinstance(ref, HealthReferral) and ref.to_facility_code == "79002"
    assert ref.priority.value == "URGENT"
    assert isinstance(app, HealthAppointment) and app.status.value == "BOOKED"
    assert isinstance(lab, HealthLabResult) and lab.loinc_code == "2345-7"
    assert lab.interpretation is not None and lab.interpretation.value == "ABNORMAL"


@pytest.mark.parametrize(("change", "code", "says"), [
    (lambda e: e.pop("reasonCode"), "required", "ICD-10"),
    (lambda e: e.update(subject={"reference": "Patient/unknown"}), "required", "personal ID"),
    (lambda e: e.update(serviceProvider={"identifier": {"system": CONFIG.facility_system,
                                                        "value": "99999"}}),
     "not-found", "facility register"),
    (lambda e: e.update(period="yesterday"), "structure", "not a valid FHIR Encounter"),
    (lambda e: e.update(status="entered-in-error"), "code-invalid", "Encounter.status"),
    (lambda e: e.update(period={"start": "2999-01-01T00:00:00Z"}), "invariant", "future"),
])  # fmt: skip
def test_incomplete_or_wrong_encounters_are_rejected_saying_why(change: Any, code: str,
                                                                says: str) -> None:  # fmt: skip
    encounter = {**ENCOUNTER}
    change(encounter)
    out = FhirMapper(CONFIG).map(bundle(encounter))
    assert out.events == []
    [issue] = out.operation_outcome()["issue"]
    assert issue["severity"] == "error" and issue["code"] == code
    assert says in issue["diagnostics"], issue["diagnostics"]
    assert issue["expression"][0].startswith("Bundle.entry[3].resource")


def test_unsupported_resources_are_named() -> None:
    out = FhirMapper(CONFIG).map({"resourceType": "MedicationRequest", "id": "m"})
    assert out.issues[0]["code"] == "not-supported"
    assert "MedicationRequest" in out.issues[0]["diagnostics"]


def test_not_a_resource_at_all() -> None:
    assert FhirMapper(CONFIG).map([1, 2]).issues[0]["code"] == "structure"


def test_readme_fhir_config_example_loads_and_names_a_real_2025_commune() -> None:
    from pathlib import Path

    from hub.domain.units import admin_units

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index('```json\n{"patient_system"') + len("```json\n")
    config = FhirConfig.model_validate_json(readme[start : readme.index("```", start)])
    communes = admin_units().communes
    for facility in config.facilities.values():
        assert communes[facility.commune_code].province_code == facility.province_code
