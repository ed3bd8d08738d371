"""FHIR R4 → the hub's health events: Encounter, ServiceRequest (referral), Appointment,
Observation and DiagnosticReport (its result Observations), singly or in a Bundle.

Resources are parsed with `fhir.resources` (R4B models, wire-compatible with R4 for these
resources). The subject's personal ID is the Patient identifier of the configured system; the
facility is the Organization identifier of the configured system, and its province and commune
come from the facility register in the FHIR config. Anything unsupported or incomplete gives
an OperationOutcome issue that says why, with a FHIRPath-like location; nothing is guessed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, Field, ValidationError

from hub.domain.enums import CodeSystem
from hub.domain.events import (
    HealthAppointment,
    HealthEncounter,
    HealthEvent,
    HealthLabResult,
    HealthReferral,
)

# Resources that only give context (who, where) to the clinical ones.
CONTEXT = ("Patient", "Organization", "Location", "Practitioner", "PractitionerRole")
SUPPORTED = ("Encounter", "ServiceRequest", "Appointment", "Observation", "DiagnosticReport")
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
NAMESPACE = uuid.UUID("2b9d7c55-7b8e-4d0c-9a57-3f0e6f2a1c10")

ENCOUNTER_CLASS = {"AMB": "AMBULATORY", "IMP": "INPATIENT", "ACUTE": "INPATIENT",
                   "NONAC": "INPATIENT", "EMER": "EMERGENCY"}  # fmt: skip
ENCOUNTER_STATUS = {"planned": "PLANNED", "arrived": "IN_PROGRESS", "triaged": "IN_PROGRESS",
                    "in-progress": "IN_PROGRESS", "onleave": "IN_PROGRESS",
                    "finished": "FINISHED", "cancelled": "CANCELLED"}  # fmt: skip
APPOINTMENT_STATUS = {"proposed": "PROPOSED", "pending": "PROPOSED", "booked": "BOOKED",
                      "arrived": "BOOKED", "checked-in": "BOOKED", "fulfilled": "FULFILLED",
                      "cancelled": "CANCELLED", "noshow": "NOSHOW"}  # fmt: skip
OBSERVATION_STATUS = {"registered": "REGISTERED", "preliminary": "PRELIMINARY",
                      "final": "FINAL", "amended": "AMENDED", "corrected": "AMENDED"}  # fmt: skip
PRIORITY = {"routine": "ROUTINE", "urgent": "URGENT", "asap": "ASAP", "stat": "STAT"}
INTERPRETATION = {"N": "NORMAL", "A": "ABNORMAL", "H": "ABNORMAL", "L": "ABNORMAL",
                  "AA": "CRITICAL", "HH": "CRITICAL", "LL": "CRITICAL"}  # fmt: skip
SEX = {"male": "MALE", "female": "FEMALE"}


class Facility(BaseModel):
    province_code: str = Field(pattern=r"^[0-9]{2}$")
    commune_code: str = Field(pattern=r"^[0-9]{5}$")


class FhirConfig(BaseModel):
    """Which identifier systems carry the personal ID and the facility code, and where each
    facility is (2025 codes)."""

    patient_system: str = "https://lienthong.gov.vn/fhir/sid/cccd"
    facility_system: str = "https://lienthong.gov.vn/fhir/sid/facility"
    facilities: dict[str, Facility] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> FhirConfig:
        """The config in ``path`` (the defaults, with no facilities, when there is none);
        :class:`FhirConfigError` naming the file and what is wrong in it."""
        if not path.exists():
            return cls()
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise FhirConfigError(f"{path}: {exc}") from exc


class FhirConfigError(ValueError):
    """The FHIR config file cannot be read or is wrong; the message says where and what."""


@dataclass
class Outcome:
    """Mapped events, or issues in OperationOutcome form (FHIR's error document)."""

    events: list[HealthEvent] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)

    def operation_outcome(self) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": self.issues}


class Reject(Exception):
    def __init__(self, code: str, diagnostics: str, where: str) -> None:
        super().__init__(diagnostics)
        self.issue = {"severity": "error", "code": code, "diagnostics": diagnostics,
                      "expression": [where]}  # fmt: skip


def _codes(concepts: Any, system: str) -> list[str]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    return [c["code"] for concept in concepts or [] for c in concept.get("coding", [])
            if c.get("system") == system and c.get("code")]  # fmt: skip


class Index:
    """Resources of a Bundle by the references that can point at them."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.by_ref: dict[str, dict[str, Any]] = {}
        for entry in entries:
            res = entry.get("resource") or {}
            if isinstance(entry.get("fullUrl"), str):
                self.by_ref[entry["fullUrl"]] = res
            if isinstance(res.get("id"), str):
                self.by_ref[f"{res.get('resourceType')}/{res['id']}"] = res

    def resolve(self, ref: Any, parent: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(ref, dict):
            return None
        target = ref.get("reference", "")
        if target.startswith("#"):
            return next((c for c in parent.get("contained", []) if c.get("id") == target[1:]),
                        None)  # fmt: skip
        if target in self.by_ref:
            return self.by_ref[target]
        if ref.get("identifier"):
            return {"identifier": [ref["identifier"]]}
        return None


def _moment(value: str) -> str:
    """A FHIR dateTime as an instant: a bare date is midnight in Vietnam (UTC+7)."""
    return f"{value}T00:00:00+07:00" if len(value) == 10 else value


def _mapped(table: dict[str, str], value: Any, what: str, where: str) -> str:
    if value not in table:
        raise Reject("code-invalid", f"{what} {value!r} has no hub equivalent; known: "
                     f"{', '.join(table)}", where)  # fmt: skip
    return table[value]


def _identifier(resource: dict[str, Any] | None, system: str) -> str | None:
    for ident in (resource or {}).get("identifier", []):
        if ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


class FhirMapper:
    def __init__(self, config: FhirConfig) -> None:
        self.config = config

    def map(self, data: Any) -> Outcome:
        out = Outcome()
        if not isinstance(data, dict) or "resourceType" not in data:
            out.issues.append(Reject("structure", "expected a FHIR resource or Bundle",
                                     "$this").issue)  # fmt: skip
            return out
        if data["resourceType"] == "Bundle":
            raw: list[Any] = data["entry"] if isinstance(data.get("entry"), list) else []
            entries = [e for e in raw if isinstance(e, dict) and isinstance(e.get("resource"),
                                                                             dict)]  # fmt: skip
            if len(entries) != len(raw):
                out.issues.append(Reject("structure", "every Bundle.entry needs a resource "
                                         "object", "Bundle.entry").issue)  # fmt: skip
                return out
            resources = [(f"Bundle.entry[{i}].resource", e["resource"])
                         for i, e in enumerate(entries)]  # fmt: skip
        else:
            entries = [{"resource": data}]
            resources = [(str(data["resourceType"]), data)]
        index = Index(entries)
        clinical = [(w, r) for w, r in resources if r.get("resourceType") not in CONTEXT]
        if not clinical:
            nothing = f"nothing to map: no {', '.join(SUPPORTED)}"
            out.issues.append(Reject("required", nothing, "Bundle").issue)
        mapped_obs: set[int] = set()
        for where, resource in clinical:
            try:
                for event in self._one(where, resource, index, mapped_obs):
                    out.events.append(event)
            except Reject as rej:
                out.issues.append(rej.issue)
            except (AttributeError, TypeError, KeyError, ValueError) as exc:
                # A shape FHIR validation let through but the mapping did not expect.
                out.issues.append(Reject("structure", f"cannot read this resource: {exc!r}",
                                         where).issue)  # fmt: skip
        return out

    def _one(self, where: str, res: dict[str, Any], index: Index,
             mapped_obs: set[int]) -> list[HealthEvent]:  # fmt: skip
        kind = res.get("resourceType")
        if kind not in SUPPORTED:
            raise Reject("not-supported", f"{kind} is not mapped to a hub event; supported: "
                         f"{', '.join(SUPPORTED)}", where)  # fmt: skip
        try:
            get_fhir_model_class(kind).model_validate(res)
        except (ValidationError, ValueError) as exc:
            raise Reject("structure", f"not a valid FHIR {kind}: {str(exc)[:500]}",
                         where) from exc  # fmt: skip
        if kind == "DiagnosticReport":
            results = [index.resolve(r, res) for r in res.get("result", [])]
            observations = [o for o in results if o and o.get("resourceType") == "Observation"]
            if not observations:
                raise Reject("required", "DiagnosticReport.result has no Observation in the "
                             "Bundle", f"{where}.result")  # fmt: skip
            events: list[HealthEvent] = []
            for obs in observations:
                if id(obs) not in mapped_obs:
                    mapped_obs.add(id(obs))
                    events.extend(self._one(f"{where}.result", obs, index, mapped_obs))
            return events
        if kind == "Observation":
            if id(res) in mapped_obs and where.endswith("resource"):
                return []
            mapped_obs.add(id(res))
        return [self._event(kind, where, res, index)]

    def _event(self, kind: str, where: str, res: dict[str, Any], index: Index) -> HealthEvent:
        subject_ref = res.get("subject")
        if kind == "Appointment":
            actors = [p.get("actor") or {} for p in res.get("participant", [])]
            subject_ref = next((a for a in actors if "Patient" in str(a.get("reference", ""))
                                or a.get("type") == "Patient"), None)  # fmt: skip
        patient = index.resolve(subject_ref, res)
        pid = _identifier(patient, self.config.patient_system)
        if pid is None:
            raise Reject("required", "the subject Patient has no identifier of system "
                         f"{self.config.patient_system} (the personal ID)",
                         f"{where}.subject")  # fmt: skip
        facility_code, facility = self._facility(kind, where, res, index)
        base: dict[str, Any] = {
            "event_id": str(uuid.uuid5(NAMESPACE, f"{facility_code}/{kind}/{res.get('id')}")),
            "source_system": f"fhir-{facility_code}",
            "code_system": CodeSystem.V2025.value,
            "province_code": facility.province_code,
            "commune_code": facility.commune_code,
            "facility_code": facility_code,
            "patient_id": pid,
        }
        if patient and patient.get("name"):
            name = patient["name"][0]
            base["patient_full_name"] = name.get("text") or " ".join(
                [name.get("family", ""), *name.get("given", [])]).strip() or None  # fmt: skip
        if patient and patient.get("gender") in SEX:
            base["patient_sex"] = SEX[patient["gender"]]
        if patient and patient.get("birthDate"):
            base["patient_date_of_birth"] = patient["birthDate"]
        build = {"Encounter": self._encounter, "ServiceRequest": self._referral,
                 "Appointment": self._appointment,
                 "Observation": self._observation}[kind]  # fmt: skip
        model, fields = build(where, res, index)
        try:
            return model.model_validate({**base, **fields})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
                                 for e in exc.errors())  # fmt: skip
            raise Reject("invariant", f"the mapped {model.__name__} breaks the hub's rules: "
                         f"{problems}", where) from exc  # fmt: skip

    def _facility(self, kind: str, where: str, res: dict[str, Any],
                  index: Index) -> tuple[str, Facility]:  # fmt: skip
        refs = {"Encounter": [res.get("serviceProvider")],
                "ServiceRequest": [res.get("requester")],
                "Appointment": [p.get("actor") for p in res.get("participant", [])],
                "Observation": list(res.get("performer", []))}[kind]  # fmt: skip
        for ref in refs:
            code = _identifier(index.resolve(ref, res), self.config.facility_system)
            if code is None:
                continue
            if code not in self.config.facilities:
                raise Reject("not-found", f"facility {code} is not in the facility register",
                             where)  # fmt: skip
            return code, self.config.facilities[code]
        raise Reject("required", "no Organization with an identifier of system "
                     f"{self.config.facility_system} (the facility)", where)  # fmt: skip

    def _encounter(self, where: str, res: dict[str, Any],
                   index: Index) -> tuple[type[HealthEvent], dict[str, Any]]:  # fmt: skip
        diagnoses = _codes(res.get("reasonCode"), ICD10)
        for diag in res.get("diagnosis", []):
            cond = index.resolve(diag.get("condition"), res)
            diagnoses += _codes((cond or {}).get("code"), ICD10)
        if not diagnoses:
            raise Reject("required", f"no ICD-10 diagnosis ({ICD10}) in reasonCode or diagnosis",
                         f"{where}.reasonCode")  # fmt: skip
        period = res.get("period") or {}
        if not period.get("start"):
            raise Reject("required", "Encounter.period.start is missing", f"{where}.period")
        cls = (res.get("class") or {}).get("code")
        return HealthEncounter, {
            "occurred_at": _moment(period.get("end") or period["start"]),
            "encounter_id": res.get("id") or "",
            "encounter_class": _mapped(ENCOUNTER_CLASS, cls, "Encounter.class", where),
            "status": _mapped(ENCOUNTER_STATUS, res.get("status"), "Encounter.status", where),
            "period_start": _moment(period["start"]),
            "period_end": _moment(period["end"]) if period.get("end") else None,
            "primary_diagnosis_icd10": diagnoses[0],
            "secondary_diagnoses_icd10": diagnoses[1:],
        }

    def _referral(self, where: str, res: dict[str, Any],
                  index: Index) -> tuple[type[HealthEvent], dict[str, Any]]:  # fmt: skip
        reasons = _codes(res.get("reasonCode"), ICD10)
        if not reasons:
            raise Reject("required", f"no ICD-10 reasonCode ({ICD10})", f"{where}.reasonCode")
        to = next((_identifier(index.resolve(p, res), self.config.facility_system)
                   for p in res.get("performer", [])), None)  # fmt: skip
        if not to:
            raise Reject("required", "ServiceRequest.performer names no facility to refer to",
                         f"{where}.performer")  # fmt: skip
        if not res.get("authoredOn"):
            raise Reject("required", "ServiceRequest.authoredOn is missing", where)
        return HealthReferral, {
            "occurred_at": _moment(res["authoredOn"]), "referral_id": res.get("id") or "",
            "to_facility_code": to, "reason_icd10": reasons[0],
            "priority": _mapped(PRIORITY, res.get("priority", "routine"),
                                "ServiceRequest.priority", where),
        }  # fmt: skip

    def _appointment(self, where: str, res: dict[str, Any],
                     index: Index) -> tuple[type[HealthEvent], dict[str, Any]]:  # fmt: skip
        if not res.get("start"):
            raise Reject("required", "Appointment.start is missing", f"{where}.start")
        booked = res.get("created") or (res.get("meta") or {}).get("lastUpdated")
        if not booked:
            raise Reject("required", "Appointment.created (when it was booked) is missing",
                         f"{where}.created")  # fmt: skip
        reasons = _codes(res.get("reasonCode"), ICD10)
        return HealthAppointment, {
            "occurred_at": _moment(booked),
            "appointment_id": res.get("id") or "",
            "status": _mapped(APPOINTMENT_STATUS, res.get("status"), "Appointment.status", where),
            "start": res["start"], "reason_icd10": reasons[0] if reasons else None,
        }  # fmt: skip

    def _observation(self, where: str, res: dict[str, Any],
                     index: Index) -> tuple[type[HealthEvent], dict[str, Any]]:  # fmt: skip
        loinc = _codes(res.get("code"), LOINC)
        if not loinc:
            raise Reject("required", f"Observation.code has no LOINC code ({LOINC})",
                         f"{where}.code")  # fmt: skip
        when = res.get("effectiveDateTime") or (res.get("effectivePeriod") or {}).get("start")
        if not when:
            raise Reject("required", "Observation.effective[x] is missing", f"{where}.effective")
        quantity = res.get("valueQuantity") or {}
        interp = [c.get("code") for i in res.get("interpretation", [])
                  for c in i.get("coding", [])]  # fmt: skip
        display = (res.get("code") or {}).get("text") or next(
            (c.get("display") for c in res["code"].get("coding", []) if c.get("display")), loinc[0]
        )
        return HealthLabResult, {
            "occurred_at": _moment(res.get("issued") or when),
            "observation_id": res.get("id") or "",
            "loinc_code": loinc[0], "display": display,
            "status": _mapped(OBSERVATION_STATUS, res.get("status"), "Observation.status", where),
            "value_quantity": quantity.get("value"), "unit": quantity.get("unit"),
            "value_string": res.get("valueString"),
            "interpretation": next((INTERPRETATION[c] for c in interp if c in INTERPRETATION),
                                   None),
            "effective_at": _moment(when),
        }  # fmt: skip
