"""`hub schemas check`: passes on the repository, fails on an incompatible change."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from hub.wire.codec import SCHEMAS_DIR
from hub.wire.schema_check import check
from tests.conftest import run_hub


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)  # fmt: skip


def _repo_with_schemas(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(SCHEMAS_DIR, repo / "schemas")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    return repo / "schemas"


def test_repository_schemas_pass() -> None:
    result = run_hub("schemas", "check", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "history/civil_birth.v1.avsc" in result.stdout


def test_adding_a_required_field_without_default_fails_naming_the_field(tmp_path: Path) -> None:
    schemas = _repo_with_schemas(tmp_path)
    path = schemas / "civil_death.avsc"
    raw = json.loads(path.read_text())
    raw["fields"].append({"name": "burial_place", "type": "string", "doc": "new, no default"})
    path.write_text(json.dumps(raw))
    result = run_hub("schemas", "check", "--dir", str(schemas), "--rev", "HEAD", check=False)
    assert result.returncode != 0
    assert "burial_place" in result.stderr
    assert "INCOMPATIBLE" in result.stdout


def test_a_revision_that_does_not_exist_is_refused_not_compared_with_nothing(
    tmp_path: Path,
) -> None:
    """An incompatible change checked against a mistyped revision fails the check (comparing
    with no schemas at all would call every change new, and pass it)."""
    schemas = _repo_with_schemas(tmp_path)
    path = schemas / "civil_death.avsc"
    raw = json.loads(path.read_text())
    raw["fields"].append({"name": "burial_place", "type": "string", "doc": "new, no default"})
    path.write_text(json.dumps(raw))
    for rev in ("mian", "HEAD~5"):
        result = run_hub("schemas", "check", "--dir", str(schemas), "--rev", rev, check=False)
        assert result.returncode == 2, result.stdout
        assert f"{rev}: no such commit" in result.stderr
    copy = tmp_path / "no-git"
    shutil.copytree(schemas, copy)
    result = run_hub("schemas", "check", "--dir", str(copy), "--rev", "main", check=False)
    assert result.returncode == 2 and "not in a git repository" in result.stderr


def test_adding_an_optional_field_with_default_passes(tmp_path: Path) -> None:
    schemas = _repo_with_schemas(tmp_path)
    path = schemas / "civil_death.avsc"
    raw = json.loads(path.read_text())
    raw["fields"].append(
        {"name": "burial_place", "type": ["null", "string"], "default": None, "doc": "optional"}
    )
    path.write_text(json.dumps(raw))
    rows = check(schemas, {"civil_death.avsc": (SCHEMAS_DIR / "civil_death.avsc").read_text()},
                 "HEAD")  # fmt: skip
    death = [r for r in rows if r.schema == "civil_death.avsc"]
    assert death and all(r.ok for r in death)
    assert death[0].detail == "backward compatible"


def test_a_schema_that_does_not_parse_fails(tmp_path: Path) -> None:
    schemas = _repo_with_schemas(tmp_path)
    (schemas / "broken.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": 1}]}')
    rows = check(schemas, {}, "none")
    assert any(r.schema == "broken.avsc" and not r.ok for r in rows)


def test_the_event_catalog_document_is_current() -> None:
    from hub.wire.catalog_doc import render
    from hub.wire.codec import SCHEMAS_DIR

    doc = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"
    assert doc.read_text() == render(SCHEMAS_DIR), "regenerate: hub schemas doc > docs/EVENTS.md"
