"""`hub units convert`: where legacy (pre-July-2025) communes lie in the 2025 system, as rows
for JSON and as lines for a terminal (hub/domain/units.py does the conversion)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.domain.units import AdminUnits, UnknownUnit

UNKNOWN = "unknown legacy commune code"


def conversion_rows(table: AdminUnits, codes: Iterable[str]) -> list[dict[str, Any]]:
    """One row a legacy commune code: its legacy name and province, its 2025 province and
    commune (None where a split has no rule), whether it was split, among which 2025 communes
    and the rule that picks one; a code that does not exist gets a row with ``error``."""
    rows: list[dict[str, Any]] = []
    for code in codes:
        try:
            conv = table.convert(code)
        except UnknownUnit:
            rows.append({"legacy_commune": code, "error": UNKNOWN})
            continue
        legacy = table.legacy_communes[code]
        rows.append({
            "legacy_commune": code,
            "legacy_name": legacy.name,
            "legacy_province": legacy.province_code,
            "province": conv.province.code if conv.province else None,
            "province_name": conv.province.name if conv.province else None,
            "commune": conv.commune.code if conv.commune else None,
            "commune_name": conv.commune.name if conv.commune else None,
            "split": conv.split,
            "candidates": list(conv.candidates),
            "rule": conv.rule,
        })  # fmt: skip
    return rows


def describe(row: dict[str, Any]) -> str:
    """A row as the terminal shows it: one line, and a second for a split commune."""
    if "error" in row:
        return f"{row['legacy_commune']}: {row['error']}"
    line = (
        f"{row['legacy_commune']} {row['legacy_name']} → province {row['province']} "
        f"{row['province_name']}, commune {row['commune']} {row['commune_name']}"
    )
    if row["split"]:
        candidates = ", ".join(str(c) for c in row["candidates"])
        line += f"\n    split among {candidates}; resolved by rule: {row['rule']}"
    return line
