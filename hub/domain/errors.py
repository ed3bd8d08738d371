"""A pydantic ValidationError as field errors: the one shape the gateway, the importer and the
pipeline's dead letters use (field path, machine-readable reason, message)."""

from __future__ import annotations

from pydantic import ValidationError


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "record",
            "reason": str(e["type"]),
            "message": e["msg"],
        }
        for e in exc.errors(include_url=False)
    ]
