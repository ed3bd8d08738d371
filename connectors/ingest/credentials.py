"""Gateway credentials: API keys stored as SHA-256 hashes, each scoped to sources and provinces.

The file is JSON: ``{"keys": [{"name": "dvc-hanoi", "sha256": "<hex>", "sources":
["procedure.dossier"], "provinces": ["01"]}]}``. ``"*"`` in a list means any. Keys are random
and long (``hub gateway add-key`` makes them), so a plain SHA-256 is a sound hash for them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Credential:
    name: str
    sha256: str
    sources: frozenset[str]
    provinces: frozenset[str]

    def may_publish(self, source: str) -> bool:
        return "*" in self.sources or source in self.sources

    def may_publish_for(self, province: str) -> bool:
        return "*" in self.provinces or province in self.provinces


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Credentials:
    def __init__(self, entries: list[Credential]) -> None:
        self.entries = entries

    @classmethod
    def load(cls, path: Path) -> Credentials:
        if not path.exists():
            return cls([])
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls([
            Credential(e["name"], e["sha256"], frozenset(e["sources"]), frozenset(e["provinces"]))
            for e in data.get("keys", [])
        ])  # fmt: skip

    def find(self, key: str) -> Credential | None:
        wanted = digest(key)
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, wanted):
                return entry
        return None

    def add(self, path: Path, name: str, sources: list[str], provinces: list[str]) -> str:
        """Create a key for ``name``, store its hash in ``path`` and return the key (once)."""
        key = secrets.token_urlsafe(32)
        self.entries.append(Credential(name, digest(key), frozenset(sources), frozenset(provinces)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"keys": [
            {"name": e.name, "sha256": e.sha256, "sources": sorted(e.sources),
             "provinces": sorted(e.provinces)} for e in self.entries
        ]}, indent=2))  # fmt: skip
        return key
