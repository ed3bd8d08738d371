"""Vietnam's administrative units, before and after the 1 July 2025 merger.

Reference data comes from the maintained ``vietnamadminunits`` package (MIT): its SQLite
dataset of the 63-province (legacy) and 34-province (2025) units, and its converter tables.
Nothing here is typed by hand. The package converts by *name*; the hub's events carry *codes*,
so this module joins the two through the package's keys once, at first use.

Split communes: a legacy commune divided among several 2025 communes is resolved to the
dataset's default new commune (``isDefaultNewWard``), the same rule the package's own
``convert_address`` applies when no street address is given. When the dataset names no single
default, the conversion is unresolved and the event is dead-lettered (reason
``split_commune_unresolved``), never guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import vietnamadminunits
from vietnamadminunits.database import query

from hub.domain.enums import CodeSystem

SPLIT_RULE = "dataset default ward (vietnamadminunits isDefaultNewWard)"


@dataclass(frozen=True)
class Unit:
    """A province or commune: its code, name and (for communes) province code."""

    code: str
    name: str
    province_code: str
    district_code: str = ""


@dataclass(frozen=True)
class Conversion:
    """Where a legacy commune lies in the 2025 system."""

    legacy_commune: str
    province: Unit | None
    commune: Unit | None
    split: bool
    candidates: tuple[str, ...]  # 2025 commune codes the legacy commune was divided among
    rule: str

    @property
    def resolved(self) -> bool:
        return self.commune is not None


class UnknownUnit(LookupError):
    """A code that does not exist in the declared code system (permanent)."""

    reason = "unknown_admin_unit"
    retriable = False


class UnresolvedSplit(LookupError):
    """A split legacy commune with no rule-given 2025 commune (permanent)."""

    reason = "split_commune_unresolved"
    retriable = False


class AdminUnits:
    """Lookup and legacy → 2025 conversion by code."""

    def __init__(self) -> None:
        legacy = query(
            "SELECT provinceCode, districtCode, wardCode, provinceKey, districtKey, wardKey, "
            "province, district, ward FROM admin_units_legacy"
        )
        current = query(
            "SELECT provinceCode, wardCode, provinceKey, wardKey, province, ward FROM admin_units"
        )
        self.legacy_provinces = {r["provinceCode"]: r["province"] for r in legacy}
        self.legacy_districts = {r["districtCode"]: r["provinceCode"] for r in legacy}
        self.legacy_communes = {
            r["wardCode"]: Unit(r["wardCode"], r["ward"], r["provinceCode"], r["districtCode"])
            for r in legacy
            if r["wardCode"]
        }
        self.provinces = {
            r["provinceCode"]: Unit(r["provinceCode"], r["province"], r["provinceCode"])
            for r in current
        }
        self.communes = {
            r["wardCode"]: Unit(r["wardCode"], r["ward"], r["provinceCode"]) for r in current
        }
        self.conversions = _build_conversions(legacy, current, self.provinces, self.communes)
        self._birth_codes: frozenset[str] | None = None

    def exists(self, system: CodeSystem, province: str, commune: str, district: str | None) -> str:
        """Return '' when the codes exist and agree in ``system``, else what is wrong."""
        if system is CodeSystem.V2025:
            if province not in self.provinces:
                return f"province {province!r} does not exist in the 2025 system"
            unit = self.communes.get(commune)
            if unit is None:
                return f"commune {commune!r} does not exist in the 2025 system"
            if unit.province_code != province:
                return f"commune {commune!r} is not in province {province!r} (2025 system)"
            if district:
                return "district codes do not exist in the 2025 system (2-level structure)"
            return ""
        if province not in self.legacy_provinces:
            return f"province {province!r} does not exist in the legacy system"
        legacy = self.legacy_communes.get(commune)
        if legacy is None:
            return f"commune {commune!r} does not exist in the legacy system"
        if legacy.province_code != province:
            return f"commune {commune!r} is not in legacy province {province!r}"
        if district and legacy.district_code != district:
            return f"commune {commune!r} is not in legacy district {district!r}"
        return ""

    def convert(self, legacy_commune: str) -> Conversion:
        """The 2025 province and commune of a legacy commune code."""
        try:
            return self.conversions[legacy_commune]
        except KeyError:
            raise UnknownUnit(f"legacy commune {legacy_commune!r} does not exist") from None

    def to_2025(self, system: CodeSystem, province: str, commune: str) -> tuple[str, str]:
        """(province, commune) in the 2025 system; raises UnknownUnit / UnresolvedSplit."""
        if system is CodeSystem.V2025:
            if commune not in self.communes:
                raise UnknownUnit(f"commune {commune!r} does not exist in the 2025 system")
            return province, commune
        conv = self.convert(commune)
        if conv.commune is None or conv.province is None:
            raise UnresolvedSplit(
                f"legacy commune {commune!r} was split among {', '.join(conv.candidates)} "
                "and the dataset names no default"
            )
        return conv.province.code, conv.commune.code

    def birth_province_codes(self) -> frozenset[str]:
        """3-digit place-of-birth codes of personal IDs: '0' + the legacy province code."""
        if self._birth_codes is None:
            self._birth_codes = frozenset(f"0{code}" for code in self.legacy_provinces)
        return self._birth_codes


def _build_conversions(
    legacy: list[dict[str, Any]],
    current: list[dict[str, Any]],
    provinces: dict[str, Unit],
    communes: dict[str, Unit],
) -> dict[str, Conversion]:
    data_file = Path(vietnamadminunits.__file__).parent / "data" / "converter_2025.json"
    data = json.loads(data_file.read_text(encoding="utf-8"))
    new_province_of = {old: new for new, olds in data["DICT_PROVINCE"].items() for old in olds}
    whole: dict[str, tuple[str, str]] = {}
    for new_prov, wards in data["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_ward, olds in wards.items():
            for old in olds:
                whole[old] = (new_prov, new_ward)
    by_key = {(r["provinceKey"], r["wardKey"]): r["wardCode"] for r in current}

    conversions: dict[str, Conversion] = {}
    for r in legacy:
        if not r["wardCode"]:
            continue
        key = f"{r['provinceKey']}_{r['districtKey']}_{r['wardKey']}"
        new_prov = new_province_of.get(r["provinceKey"], "")
        divided = data["DICT_PROVINCE_WARD_DIVIDED"].get(new_prov, {}).get(key, [])
        candidates = tuple(
            code
            for code in (by_key.get((new_prov, w["newWardKey"])) for w in divided)
            if code is not None
        )
        if key in whole:
            target = by_key.get(whole[key])
            rule = "whole commune merged"
        else:
            defaults = [w["newWardKey"] for w in divided if w["isDefaultNewWard"]]
            target = by_key.get((new_prov, defaults[0])) if len(defaults) == 1 else None
            rule = SPLIT_RULE
        commune = communes.get(target) if target else None
        conversions[r["wardCode"]] = Conversion(
            legacy_commune=r["wardCode"],
            province=provinces.get(commune.province_code) if commune else None,
            commune=commune,
            split=key not in whole and bool(divided),
            candidates=candidates,
            rule=rule,
        )
    return conversions


@cache
def admin_units() -> AdminUnits:
    """The process-wide reference data (built once, ~0.3 s)."""
    return AdminUnits()
