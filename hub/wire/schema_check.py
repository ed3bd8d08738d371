"""The schema gate: every schema parses, and every change is backward compatible.

Backward compatible = data written with the previous version can be read with the new one.
Compatibility is decided by the Apache ``avro`` package's ReaderWriterCompatibilityChecker,
never by rules of our own.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import avro.errors
import avro.schema
import fastavro
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro.schema import SchemaParseException


@dataclass(frozen=True)
class CheckRow:
    schema: str  # file, relative to the schemas directory
    against: str  # what it was compared with
    ok: bool
    detail: str


def _parse(text: str, where: str) -> avro.schema.Schema:
    fastavro.parse_schema(json.loads(text), _write_hint=False)
    return avro.schema.parse(text)


def compatible(new_text: str, old_text: str) -> tuple[bool, str]:
    """Can a reader with ``new_text`` read data written with ``old_text``?"""
    reader = avro.schema.parse(new_text)
    writer = avro.schema.parse(old_text)
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return True, "backward compatible"
    where = ", ".join(sorted(result.locations))
    return False, f"{'; '.join(sorted(result.messages))} (at {where})"


def check(schemas_dir: Path, previous: dict[str, str], label: str) -> list[CheckRow]:
    """Rows for every schema: parse result, compatibility with ``previous`` and with history.

    ``previous`` maps a file name (relative to ``schemas_dir``) to its text at ``label``.
    """
    rows: list[CheckRow] = []
    current: dict[str, tuple[str, str]] = {}  # full name -> (file, text)
    for path in sorted(schemas_dir.glob("**/*.avsc")):
        rel = str(path.relative_to(schemas_dir))
        text = path.read_text(encoding="utf-8")
        try:
            parsed = _parse(text, rel)
        except (avro.errors.AvroException, SchemaParseException, ValueError, KeyError,
                TypeError) as exc:  # fmt: skip
            rows.append(CheckRow(rel, "parse", False, f"does not parse: {exc}"))
            continue
        if "/" not in rel:
            current[parsed.fullname] = (rel, text)  # type: ignore[attr-defined]
        old = previous.get(rel)
        if old is None:
            rows.append(CheckRow(rel, label, True, "new or unchanged since " + label))
        elif old == text:
            rows.append(CheckRow(rel, label, True, "unchanged"))
        else:
            ok, detail = compatible(text, old)
            rows.append(CheckRow(rel, label, ok, detail))
    for path in sorted((schemas_dir / "history").glob("*.avsc")):
        text = path.read_text(encoding="utf-8")
        name = avro.schema.parse(text).fullname  # type: ignore[attr-defined]
        if name in current:
            ok, detail = compatible(current[name][1], text)
            rows.append(CheckRow(current[name][0], f"history/{path.name}", ok, detail))
    return rows


class UnknownRevision(LookupError):
    """A revision asked for by name that git does not know: comparing with nothing would pass
    every change, so the check refuses instead."""


def git_previous(schemas_dir: Path, rev: str | None) -> tuple[dict[str, str], str]:
    """Schema texts at ``rev`` (default: merge base with main, else the previous commit; a
    first commit or a copy without git history compares with nothing). An explicit ``rev``
    that does not exist raises :class:`UnknownRevision`."""
    repo = _git(schemas_dir, "rev-parse", "--show-toplevel")
    if repo is None:
        if rev is not None:
            raise UnknownRevision(f"{rev}: {schemas_dir} is not in a git repository")
        return {}, "no git history"
    explicit = rev is not None
    if rev is None:
        head = _git(schemas_dir, "rev-parse", "HEAD")
        base = _git(schemas_dir, "merge-base", "HEAD", "main")
        rev = base if base and base != head else "HEAD~1"
    if _git(schemas_dir, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}") is None:
        if explicit:
            raise UnknownRevision(f"{rev}: no such commit, branch or tag in {repo}")
        return {}, f"{rev} (not found)"
    prefix = str(schemas_dir.resolve().relative_to(Path(repo)))
    root = Path(repo)
    listing = _git(root, "ls-tree", "-r", "--name-only", rev, "--", prefix) or ""
    texts = {}
    for name in listing.splitlines():
        if name.endswith(".avsc"):
            text = _git(root, "show", f"{rev}:{name}", strip=False)
            if text is not None:
                texts[str(Path(name).relative_to(prefix))] = text
    return texts, rev


def _git(cwd: Path, *args: str, strip: bool = True) -> str | None:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() if strip else result.stdout
