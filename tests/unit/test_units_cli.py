"""`hub units convert`: what an operator reads for legacy commune codes, checked against the
dataset package itself (its legacy table and its own name-based converter)."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner
from vietnamadminunits import convert_address
from vietnamadminunits.database import query

from hub.cli import cli
from hub.domain.units import admin_units


def _legacy_row(code: str) -> dict[str, str]:
    rows = query(
        f"SELECT ward, district, province FROM admin_units_legacy WHERE wardCode = '{code}' LIMIT 1"
    )
    assert rows, code
    return {k: str(v) for k, v in rows[0].items()}


def _whole_communes(n: int) -> list[str]:
    codes = sorted(c.legacy_commune for c in admin_units().conversions.values() if not c.split)
    return random.Random(766).sample(codes, n)


def test_json_rows_name_the_legacy_commune_and_its_2025_province_as_the_package_does() -> None:
    codes = _whole_communes(5)
    done = CliRunner().invoke(cli, ["units", "convert", *codes, "--json"])
    assert done.exit_code == 0, done.output
    rows = json.loads(done.output)
    assert [r["legacy_commune"] for r in rows] == codes
    for row in rows:
        legacy = _legacy_row(row["legacy_commune"])
        assert row["legacy_name"] == legacy["ward"]
        converted = convert_address(f"{legacy['ward']}, {legacy['district']}, {legacy['province']}")
        assert row["province_name"] == converted.province
        assert row["split"] is False and row["commune"] is not None


def test_a_split_commune_shows_its_candidates_and_the_rule_that_picked_one() -> None:
    split = next(c for c in admin_units().conversions.values() if c.split and c.commune)
    done = CliRunner().invoke(cli, ["units", "convert", split.legacy_commune])
    assert done.exit_code == 0, done.output
    first, second = done.output.rstrip("\n").split("\n")
    assert first.startswith(f"{split.legacy_commune} ")
    assert f"commune {split.commune.code} " in first
    assert "split among" in second and "default ward" in second
    for candidate in split.candidates:
        assert candidate in second


def test_an_unknown_code_is_named_and_fails_the_command_but_the_others_are_answered() -> None:
    [known] = _whole_communes(1)
    done = CliRunner().invoke(cli, ["units", "convert", "99999", known])
    assert done.exit_code == 1
    lines = done.output.splitlines()
    assert lines[0] == "99999: unknown legacy commune code"
    assert lines[1].startswith(f"{known} ") and "→ province" in lines[1]
    as_json = CliRunner().invoke(cli, ["units", "convert", "99999", "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output) == [
        {"legacy_commune": "99999", "error": "unknown legacy commune code"}
    ]
