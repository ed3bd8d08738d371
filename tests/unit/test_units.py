"""Legacy → 2025 administrative-unit conversion against the dataset package itself."""

from __future__ import annotations

import random

import pytest
from vietnamadminunits import convert_address

from hub.domain.enums import CodeSystem
from hub.domain.units import UnknownUnit, UnresolvedSplit, admin_units


def test_every_legacy_commune_resolves_or_says_why() -> None:
    units = admin_units()
    assert len(units.conversions) > 10_000
    for conv in units.conversions.values():
        assert conv.resolved or conv.split, conv.legacy_commune
        if conv.commune is not None:
            assert conv.province is not None
            assert conv.commune.province_code == conv.province.code


def test_500_sampled_legacy_communes_agree_with_the_packages_own_converter() -> None:
    """The package converts by name; the hub converts by code. Both must land in the same place."""
    units = admin_units()
    rng = random.Random(2025)
    sample = rng.sample(sorted(units.conversions), 500)
    agreed = 0
    for code in sample:
        legacy = units.legacy_communes[code]
        conv = units.convert(code)
        district = legacy.district_code
        assert district, "every legacy commune lies in a district"
        province_name = units.legacy_provinces[legacy.province_code]
        address = f"{legacy.name}, {_district_name(district)}, {province_name}"
        converted = convert_address(address)
        assert conv.province is not None and conv.commune is not None
        assert converted.province == conv.province.name, address
        if converted.ward == conv.commune.name:
            agreed += 1
    # Name matching in the package is fuzzy for a few homonymous communes; codes are exact.
    assert agreed >= 490, f"only {agreed} of 500 communes agree"


def _district_name(code: str) -> str:
    from vietnamadminunits.database import query

    rows = query(f"SELECT district FROM admin_units_legacy WHERE districtCode = '{code}' LIMIT 1")
    return str(rows[0]["district"])


def test_2025_codes_pass_through_and_unknown_codes_raise() -> None:
    units = admin_units()
    commune = next(iter(units.communes.values()))
    assert units.to_2025(CodeSystem.V2025, commune.province_code, commune.code) == (
        commune.province_code,
        commune.code,
    )
    with pytest.raises(UnknownUnit):
        units.to_2025(CodeSystem.V2025, "01", "99999")
    with pytest.raises(UnknownUnit):
        units.to_2025(CodeSystem.LEGACY, "01", "99999")


def test_a_split_commune_follows_the_documented_rule() -> None:
    units = admin_units()
    splits = [c for c in units.conversions.values() if c.split]
    assert splits, "the dataset has split communes"
    for conv in splits:
        if conv.commune is None:
            with pytest.raises(UnresolvedSplit):
                units.to_2025(CodeSystem.LEGACY, "", conv.legacy_commune)
        else:
            assert conv.commune.code in conv.candidates
            assert "default" in conv.rule


def test_existence_check_names_what_is_wrong() -> None:
    units = admin_units()
    legacy = next(iter(units.legacy_communes.values()))
    assert units.exists(CodeSystem.LEGACY, legacy.province_code, legacy.code, None) == ""
    assert "does not exist" in units.exists(CodeSystem.LEGACY, "00", legacy.code, None)
    assert "district" in units.exists(CodeSystem.LEGACY, legacy.province_code, legacy.code, "000")
