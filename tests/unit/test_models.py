"""Each validation rule has a passing and a failing case, with its machine-readable reason."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from hub.domain.enums import Sex
from hub.domain.events import (
    BirthRegistration,
    DeathRegistration,
    HealthReferral,
    ProcedureDossierEvent,
    clock_at,
)
from hub.domain.personal_id import make_personal_id, personal_id_problems
from hub.domain.topics import SourceTopic
from hub.domain.units import admin_units
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return Traffic(Codec(), seed=7, provinces=3, population=200, now=NOW)


def _reason(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return str(info.value.errors()[0]["type"])


def test_personal_id_rules() -> None:
    codes = admin_units().birth_province_codes()
    assert "001" in codes and "079" in codes  # Hà Nội, Hồ Chí Minh City (legacy codes)
    good = make_personal_id("001", Sex.FEMALE, date(2003, 5, 1), 42)
    assert good == "001303000042"
    assert personal_id_problems(good, codes, Sex.FEMALE, date(2003, 5, 1)) == []
    assert personal_id_problems("00130300004", codes) == ["personal ID must be exactly 12 digits"]
    assert "place-of-birth" in personal_id_problems("999303000042", codes)[0]
    assert "says female" in personal_id_problems(good, codes, Sex.MALE)[0]
    assert "birth-year digits" in personal_id_problems(good, codes, dob=date(2004, 5, 1))[0]
    assert "century" in personal_id_problems(good, codes, dob=date(1903, 5, 1))[0]


def test_valid_birth_passes_and_name_is_nfc(traffic: Traffic) -> None:
    data = traffic.event(SourceTopic.BIRTH).to_avro()
    decomposed = unicodedata.normalize("NFD", "  Nguyễn   Thị  Ánh ")
    data["child_full_name"] = decomposed
    event = BirthRegistration.model_validate(data)
    assert event.child_full_name == unicodedata.normalize("NFC", "Nguyễn Thị Ánh")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"child_id": "12345"}, "invalid_personal_id"),
        ({"child_sex": "MALE", "child_id": None}, "invalid_personal_id"),  # id says female
        ({"occurred_at": NOW + timedelta(days=1)}, "date_in_future"),
        ({"child_date_of_birth": NOW.date() + timedelta(days=2)}, "date_in_future"),
        ({"commune_code": "99999"}, "unknown_admin_unit"),
        ({"province_code": "99"}, "unknown_admin_unit"),
        ({"child_full_name": "   "}, "empty_name"),
        ({"mother_id": "001003000042"}, "invalid_personal_id"),  # a mother must be female
    ],
)
def test_birth_rule_failures(traffic: Traffic, change: dict[str, Any], reason: str) -> None:
    data = traffic.event(SourceTopic.BIRTH).to_avro()
    if change.get("child_id", "") is None:  # flip the sex against the id's sex digit
        change = {"child_sex": "MALE" if data["child_sex"] == "FEMALE" else "FEMALE"}
    data.update(change)
    assert _reason(BirthRegistration, data) == reason


def test_legacy_and_2025_codes_are_checked_in_their_own_system(traffic: Traffic) -> None:
    data = traffic.event(SourceTopic.BIRTH).to_avro()
    conv = admin_units().convert("00001")
    assert conv.province and conv.commune
    legacy = {**data, "code_system": "LEGACY", "province_code": "01", "district_code": "001",
              "commune_code": "00001"}  # fmt: skip
    BirthRegistration.model_validate(legacy)
    v2025 = {**data, "code_system": "V2025", "province_code": conv.province.code,
             "district_code": None, "commune_code": conv.commune.code}  # fmt: skip
    BirthRegistration.model_validate(v2025)
    wrong_district = {**legacy, "district_code": "002"}
    assert _reason(BirthRegistration, wrong_district) == "unknown_admin_unit"
    district_in_2025 = {**v2025, "district_code": "001"}
    assert _reason(BirthRegistration, district_in_2025) == "unknown_admin_unit"


def test_death_must_follow_birth(traffic: Traffic) -> None:
    data = traffic.event(SourceTopic.DEATH).to_avro()
    DeathRegistration.model_validate(data)
    data["date_of_death"] = data["deceased_date_of_birth"] - timedelta(days=1)
    assert _reason(DeathRegistration, data) == "dates_out_of_order"


def test_dossier_completed_after_received(traffic: Traffic) -> None:
    data = traffic.event(SourceTopic.DOSSIER).to_avro()
    data.update(status="COMPLETED", completed_at=data["received_at"] + timedelta(hours=1))
    ProcedureDossierEvent.model_validate(data)
    data["completed_at"] = data["received_at"] - timedelta(hours=1)
    assert _reason(ProcedureDossierEvent, data) == "dates_out_of_order"
    data["completed_at"] = None
    assert _reason(ProcedureDossierEvent, data) == "missing_field"


@pytest.mark.parametrize("code", ["J06.9", "I10", "E11.65", "U07.1"])
def test_icd10_accepts(traffic: Traffic, code: str) -> None:
    data = traffic.event(SourceTopic.REFERRAL).to_avro()
    HealthReferral.model_validate({**data, "reason_icd10": code})


@pytest.mark.parametrize("code", ["XYZ", "j06.9", "J6", "J06.", "106.9"])
def test_icd10_rejects(traffic: Traffic, code: str) -> None:
    data = traffic.event(SourceTopic.REFERRAL).to_avro()
    assert _reason(HealthReferral, {**data, "reason_icd10": code}) == "invalid_icd10"


def test_a_name_of_the_wrong_type_is_a_validation_error_not_a_crash() -> None:
    record = json.loads(Traffic(Codec(), seed=5).event(SourceTopic.BIRTH).model_dump_json())
    record["child_full_name"] = {}  # found by schemathesis against the gateway (was a 500)
    with pytest.raises(ValidationError, match="child_full_name"):
        BirthRegistration.model_validate(record)


def test_a_batch_is_validated_against_the_one_moment_it_read_the_clock_at() -> None:
    """The worker reads the clock once per batch (``clock_at``); "in the future" is judged
    against that moment, and outside the block against the real clock again."""
    traffic = Traffic(Codec(), seed=7, provinces=1, population=20, now=NOW)
    data = traffic.event(SourceTopic.BIRTH).to_avro()
    data["occurred_at"] = NOW + timedelta(hours=1)
    with clock_at(NOW + timedelta(hours=2)):
        assert BirthRegistration.model_validate(data).occurred_at == data["occurred_at"]
    with clock_at(NOW - timedelta(days=1)), pytest.raises(ValidationError) as err:
        BirthRegistration.model_validate({**data, "occurred_at": NOW - timedelta(hours=1)})
    assert err.value.errors()[0]["type"] == "date_in_future"
    with pytest.raises(ValidationError):
        BirthRegistration.model_validate(data)  # an hour ahead of the real clock


def test_the_simulator_never_registers_a_death_before_the_birth_after_midnight() -> None:
    """Just after midnight (UTC) a stale death registration is stamped yesterday, while a
    newborn of the run was born today: the simulator must not make that registration (CI met
    it as a ValidationError in the middle of a run). Every person here was born today."""
    midnight = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), UTC)
    traffic = Traffic(Codec(), seed=5, provinces=1, population=40, now=midnight, stale_share=1.0)
    today = midnight.date()
    traffic.people = [p.model_copy(update={
        "date_of_birth": today,
        "personal_id": make_personal_id(p.personal_id[:3], p.sex, today, i)})
        for i, p in enumerate(traffic.people)]  # fmt: skip
    for _ in range(5):
        death = traffic.event(SourceTopic.DEATH)
        assert isinstance(death, DeathRegistration)
        assert death.deceased_date_of_birth <= death.date_of_death <= death.occurred_at.date()
