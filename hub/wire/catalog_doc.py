"""docs/EVENTS.md, generated from schemas/*.avsc (`hub schemas doc`), so the two cannot drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.domain.events import SOURCE_MODELS


def _type(t: Any) -> str:
    if isinstance(t, list):
        inner = [_type(x) for x in t if x != "null"]
        return " \\| ".join(inner) + (" (optional)" if "null" in t else "")
    if isinstance(t, dict):
        if "logicalType" in t:
            return str(t["logicalType"])
        if t.get("type") == "enum":
            return "enum: " + ", ".join(t["symbols"])
        if t.get("type") == "array":
            return f"array of {_type(t['items'])}"
        if t.get("type") == "map":
            return f"map of {_type(t['values'])}"
        if t.get("type") == "record":
            return f"record {t['name']}"
        return _type(t.get("type"))
    return str(t)


def render(schemas_dir: Path) -> str:
    lines = [
        "# Event catalog",
        "",
        "Generated from `schemas/*.avsc` by `hub schemas doc` (a test checks this file is",
        "current). Every Kafka value is Avro single-object encoding of one of these records.",
        "",
    ]
    topic_of = {m.SCHEMA: topic.value for topic, m in SOURCE_MODELS.items()}
    for path in sorted(schemas_dir.glob("*.avsc")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        name = f"{schema['namespace']}.{schema['name']}"
        lines += [f"## {schema['name']}", "", f"`{name}` — `schemas/{path.name}`"]
        if name in topic_of:
            lines[-1] += f"; published on `{topic_of[name]}`"
        lines += ["", schema.get("doc", ""), "", "| field | type | meaning |", "|---|---|---|"]
        for f in schema["fields"]:
            doc = str(f.get("doc", "")).replace("|", "\\|")
            lines.append(f"| `{f['name']}` | {_type(f['type'])} | {doc} |")
        lines.append("")
    return "\n".join(lines)
