"""Text hygiene: one rule for every string that enters the hub, whichever door it came through.

The gateway answers 422, the importer writes a reject and the worker dead-letters with the same
reason codes, because all three validate with the domain models, which call these functions:

- ``control_character``: a Unicode control (Cc: NUL, BEL, ESC, …), format character (Cf: zero
  width spaces, bidi overrides such as U+202E, a BOM) or lone surrogate (Cs). None belongs in a
  civil-status or health record; NUL is also refused by PostgreSQL (it stopped every worker:
  issue 11), and bidi overrides make a name read differently from what is stored.
- ``invisible_name``: a name without a single letter after NFC normalisation.
- ``field_too_long``: longer than any real record's field (``MAX_NAME``, ``MAX_FREE_TEXT``,
  ``MAX_CODE``), so one request cannot store megabytes in a name.

Pure: the standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from typing import Any

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

# A Vietnamese full name is family name, middle name(s) and given name; the longest in the
# civil-status books runs to about 50 characters. 100 leaves room and still bounds storage.
MAX_NAME = 100
# Free text (place of birth, a lab result's display text or value, an agency's note).
MAX_FREE_TEXT = 2_000
# Codes and identifiers (registration numbers, dossier and facility codes, FHIR ids ≤ 64 chars).
MAX_CODE = 128

FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})

# The name of a principal the hub creates (a Kafka user, a gateway API key): written to ACLs,
# the audit trail, logs and provenance headers, so plain ASCII that cannot break a line, a
# principal string ("User:a,b") or a command line (no leading "-").
PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def forbidden_character(value: str) -> str | None:
    """The first control, format or surrogate character in ``value``, if any.

    A fast path for the common case: ASCII printable text has none (checked in C by
    ``isprintable``), so only other strings are walked character by character.
    """
    if value.isascii() and value.isprintable():
        return None
    for char in value:
        if unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            return char
    return None


def describe(char: str) -> str:
    name = unicodedata.name(char, "") or unicodedata.category(char)
    return f"U+{ord(char):04X} {name}".strip()


def check_text(value: str, limit: int, what: str = "text") -> str:
    """NFC-normalise ``value``; refuse control/format characters and overlong text."""
    char = forbidden_character(value)
    if char is not None:
        raise PydanticCustomError(
            "control_character",
            "{what} contains a control or format character ({char})",
            {"what": what, "char": describe(char)},
        )
    text = value if value.isascii() else unicodedata.normalize("NFC", value)
    if len(text) > limit:
        raise PydanticCustomError(
            "field_too_long",
            "{what} has {length} characters; at most {limit}",
            {"what": what, "length": len(text), "limit": limit},
        )
    return text


def clean_name(value: str, what: str = "name") -> str:
    """A name as stored: hygienic, NFC, single spaces, and with at least one letter."""
    name = " ".join(check_text(value, MAX_NAME * 4, what).split())
    if not name:
        raise PydanticCustomError("empty_name", "{what} must not be empty", {"what": what})
    if len(name) > MAX_NAME:
        raise PydanticCustomError(
            "field_too_long",
            "{what} has {length} characters; at most {limit}",
            {"what": what, "length": len(name), "limit": MAX_NAME},
        )
    if not any(unicodedata.category(c).startswith("L") for c in name):
        raise PydanticCustomError(
            "invisible_name", "{what} {name!r} has no letters", {"what": what, "name": name}
        )
    return name


def name_key(value: str) -> str:
    """A name for comparison: NFC, case-folded, single spaces. ``NGUYỄN  Văn An`` and
    ``nguyễn văn an`` compare equal; diacritics are kept (``Lê`` and ``Le`` are different
    family names)."""
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


def field_hygiene(value: Any, field: str, *, names: Collection[str] = (),
                  free_text: Collection[str] = (), prefix: str = "") -> Any:  # fmt: skip
    """The one text rule every model applies to every field, before its type is checked:
    names cleaned, free text and codes checked against their limits, lists item by item;
    other types untouched (pydantic's type check follows). ``prefix`` names a nested model's
    fields in errors (``interconnection.``)."""
    if isinstance(value, str):
        if field in names:
            return clean_name(value, prefix + field)
        return check_text(value, MAX_FREE_TEXT if field in free_text else MAX_CODE,
                          prefix + field)  # fmt: skip
    if isinstance(value, list):
        return [check_text(v, MAX_CODE, prefix + field) if isinstance(v, str) else v
                for v in value]  # fmt: skip
    return value


def record_hygiene(data: Any, fields: Collection[str], title: str, *,
                   names: Collection[str] = (), free_text: Collection[str] = (),
                   prefix: str = "") -> Any:  # fmt: skip
    """:func:`field_hygiene` over a whole record (a model's "before" validator), in one call.

    The same rule, checked once per record instead of once per field: pydantic calls a
    per-field validator once for every field, which cost more than the rest of validation.
    ASCII printable codes within the limit (nearly every value) are kept without a copy. Every
    offending field is reported at its own location, as a per-field validator would; type
    errors of the other fields follow once the text is clean. Only the model's ``fields``
    are looked at (an unknown key stays pydantic's ``extra_forbidden``).
    """
    if not isinstance(data, dict):
        return data
    cleaned: dict[str, Any] | None = None
    errors: list[InitErrorDetails] = []
    for field, value in data.items():
        if isinstance(value, str):
            if (field not in names and value.isascii() and value.isprintable()
                    and len(value) <= MAX_CODE):  # fmt: skip
                continue
        elif not isinstance(value, list):
            continue
        if field not in fields:
            continue
        try:
            new = field_hygiene(value, field, names=names, free_text=free_text, prefix=prefix)
        except PydanticCustomError as exc:
            errors.append(InitErrorDetails(type=exc, loc=(field,), input=value))
            continue
        if new is not value and new != value:
            cleaned = dict(data) if cleaned is None else cleaned
            cleaned[field] = new
    if errors:
        raise ValidationError.from_exception_data(title, errors)
    return data if cleaned is None else cleaned
