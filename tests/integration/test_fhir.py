"""The FHIR R4 adapter against HL7's published R4 examples (fetched from the npm registry at
test time, CC0), and `POST /v1/fhir` on a gateway with the real broker."""

from __future__ import annotations

import copy
import json
import re
import tarfile
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connectors.ingest.credentials import Credentials
from connectors.ingest.fhir import ICD10, Facility, FhirConfig, FhirMapper
from connectors.ingest.gateway import Gateway
from hub.settings import Settings
from hub.sim.traffic import Traffic
from hub.store.ingest import IngestLedger
from hub.wire.codec import Codec
from tests.integration.workers import REPO

pytestmark = pytest.mark.integration

EXAMPLES = "https://registry.npmjs.org/hl7.fhir.r4.examples/-/hl7.fhir.r4.examples-4.0.1.tgz"
KINDS = ("Encounter", "ServiceRequest", "Appointment", "Observation", "DiagnosticReport")
TRAFFIC = Traffic(Codec(), seed=21, provinces=1, population=20)
PERSON = TRAFFIC.people[0]
PROVINCE = TRAFFIC.province_codes[0]
COMMUNE = TRAFFIC.communes[PROVINCE][0]
CONFIG = FhirConfig(facilities={"79001": Facility(province_code=PROVINCE, commune_code=COMMUNE)})
FACILITY = {"resourceType": "Organization", "id": "vn-facility",
            "identifier": [{"system": CONFIG.facility_system, "value": "79001"}]}  # fmt: skip


@pytest.fixture(scope="session")
def hl7_examples() -> list[tuple[str, dict[str, Any]]]:
    cache = REPO / ".hub" / "cache" / EXAMPLES.rsplit("/", 1)[1]
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(EXAMPLES, timeout=120) as r:
            data = r.read()
        cache.write_bytes(data)
    pattern = re.compile(rf"package/({'|'.join(KINDS)})-[^/]+\.json$")
    with tarfile.open(cache) as tar:
        return [(m.name, json.load(tar.extractfile(m)))  # type: ignore[arg-type]
                for m in tar.getmembers() if pattern.match(m.name)]  # fmt: skip


def references(resource: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(resource, dict):
        ref = resource.get("reference")
        if isinstance(ref, str) and "/" in ref and not ref.startswith("#"):
            found.add(ref)
        for value in resource.values():
            found |= references(value)
    elif isinstance(resource, list):
        for value in resource:
            found |= references(value)
    return found


def in_bundle(resource: dict[str, Any], vietnamese: bool) -> dict[str, Any]:
    """The example with its Patients and Organizations present; with ``vietnamese``, also what
    only a Vietnamese system has: the personal ID, the facility code, an ICD-10 reason."""
    entries = [{"fullUrl": f"http://example.org/fhir/{resource['resourceType']}/"
                           f"{resource.get('id')}", "resource": resource}]  # fmt: skip
    for ref in sorted(references(resource)):
        kind, rid = ref.split("/")[-2:]
        if kind == "Patient":
            patient: dict[str, Any] = {"resourceType": "Patient", "id": rid}
            if vietnamese:
                patient.update(identifier=[{"system": CONFIG.patient_system,
                                            "value": PERSON.personal_id}],
                               name=[{"text": PERSON.full_name}],
                               gender=PERSON.sex.value.lower(),
                               birthDate=PERSON.date_of_birth.isoformat())  # fmt: skip
            entries.append({"resource": patient})
        elif kind == "Organization":
            entries.append({"resource": {"resourceType": "Organization", "id": rid}})
    if vietnamese:
        facility = {"reference": "Organization/vn-facility"}
        kind = resource["resourceType"]
        if kind in ("Encounter", "ServiceRequest", "Appointment"):
            resource["reasonCode"] = [{"coding": [{"system": ICD10, "code": "I10"}]},
                                      *resource.get("reasonCode", [])]  # fmt: skip
        if kind == "Encounter":
            resource["serviceProvider"] = facility
        elif kind == "ServiceRequest":
            resource.update(requester=facility, performer=[facility])
        elif kind == "Appointment":
            resource.setdefault("participant", []).append({"actor": facility,
                                                           "status": "accepted"})  # fmt: skip
        elif kind == "Observation":
            resource["performer"] = [facility, *resource.get("performer", [])]
        entries.append({"resource": copy.deepcopy(FACILITY)})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_published_examples_parse_as_fhir_and_are_refused_without_a_personal_id(
    hl7_examples: list[tuple[str, dict[str, Any]]],
) -> None:
    assert len(hl7_examples) >= 100
    mapper = FhirMapper(CONFIG)
    for name, example in hl7_examples:
        out = mapper.map(in_bundle(copy.deepcopy(example), vietnamese=False))
        assert out.events == [], name
        codes = {issue["code"] for issue in out.issues}
        assert codes and "structure" not in codes, f"{name}: {out.issues}"
        assert all(issue["diagnostics"] and issue["expression"] for issue in out.issues), name


def test_examples_with_vietnamese_identifiers_map_or_say_exactly_what_is_missing(
    hl7_examples: list[tuple[str, dict[str, Any]]],
) -> None:
    mapper = FhirMapper(CONFIG)
    mapped: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for name, example in hl7_examples:
        out = mapper.map(in_bundle(copy.deepcopy(example), vietnamese=True))
        for event in out.events:
            assert event.patient_id == PERSON.personal_id and event.facility_code == "79001"
            mapped[type(event).__name__] += 1
        for issue in out.issues:
            assert issue["code"] in {"required", "code-invalid", "invariant"}, (name, issue)
            reasons[issue["diagnostics"].split(":")[0][:60]] += 1
        assert out.events or out.issues, name
    assert set(mapped) == {"HealthEncounter", "HealthReferral", "HealthAppointment",
                           "HealthLabResult"}, (mapped, reasons)  # fmt: skip


Client = tuple[TestClient, str]


@pytest.fixture
async def fhir_client(
    kafka_broker: Settings, tmp_path: Path, ingest_ledger: IngestLedger
) -> AsyncIterator[Client]:
    keys = tmp_path / "keys.json"
    key = Credentials.load(keys).add(keys, "benh-vien-test", ["health.lab_result"], [PROVINCE],
                                     list(CONFIG.facilities))  # fmt: skip
    gateway = Gateway(kafka_broker.kafka_bootstrap, Credentials.load(keys), 1_000_000, CONFIG,
                      ledger=ingest_ledger)  # fmt: skip
    async with TestClient(TestServer(gateway.app())) as client:
        yield client, key


async def test_fhir_endpoint_accepts_a_bundle_and_answers_operation_outcomes(
    fhir_client: Client, hl7_examples: list[tuple[str, dict[str, Any]]]
) -> None:
    client, key = fhir_client
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/fhir+json"}
    observation = next(e for n, e in hl7_examples if n.endswith("Observation-f001.json"))
    body = json.dumps(in_bundle(copy.deepcopy(observation), vietnamese=True))
    r = await client.post("/v1/fhir", data=body, headers=auth)
    assert r.status == 202, await r.text()
    [event_id] = (await r.json())["accepted"]
    again = await client.post("/v1/fhir", data=body, headers=auth)
    assert (await again.json())["accepted"] == [event_id], "same resource, same event id"

    r = await client.post("/v1/fhir", data=json.dumps({"resourceType": "MedicationRequest"}),
                          headers=auth)  # fmt: skip
    assert r.status == 422
    doc = await r.json()
    assert doc["resourceType"] == "OperationOutcome"
    assert doc["issue"][0]["code"] == "not-supported"

    r = await client.post("/v1/fhir", data=body,
                          headers={**auth, "Content-Type": "text/plain"})  # fmt: skip
    assert r.status == 415 and (await r.json())["resourceType"] == "OperationOutcome"
    r = await client.post("/v1/fhir", data=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status == 401


async def test_a_key_speaks_only_for_the_facilities_it_is_bound_to(
    kafka_broker: Settings, tmp_path: Path, ingest_ledger: IngestLedger,
    hl7_examples: list[tuple[str, dict[str, Any]]],
) -> None:  # fmt: skip
    """A second hospital's key cannot send (or pre-empt the event id of) another facility's
    resource: 403, and nothing produced."""
    keys = tmp_path / "keys.json"
    creds = Credentials.load(keys)
    other = creds.add(keys, "benh-vien-khac", ["health.lab_result"], [PROVINCE], ["79002"])
    unbound = creds.add(keys, "no-facility", ["health.lab_result"], [PROVINCE])
    owner = creds.add(keys, "benh-vien-79001", ["health.lab_result"], [PROVINCE], ["79001"])
    gateway = Gateway(kafka_broker.kafka_bootstrap, Credentials.load(keys), 1_000_000, CONFIG,
                      ledger=ingest_ledger)  # fmt: skip
    observation = next(e for n, e in hl7_examples if n.endswith("Observation-f001.json"))
    body = json.dumps(in_bundle(copy.deepcopy(observation), vietnamese=True))
    async with TestClient(TestServer(gateway.app())) as client:
        for key in (other, unbound):
            r = await client.post("/v1/fhir", data=body, headers=fhir_headers(key))
            assert r.status == 403, await r.text()
            assert "facility" in (await r.json())["issue"][0]["diagnostics"]
        r = await client.post("/v1/fhir", data=body, headers=fhir_headers(owner))
        assert r.status == 202, "the real resource from its own facility is produced"


def fhir_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/fhir+json"}
