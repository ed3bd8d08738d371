"""Gateway credentials: API keys stored as SHA-256 hashes, each scoped to sources, provinces and
(for FHIR) facilities, optionally with an expiry date.

The file is JSON: ``{"keys": [{"name": "dvc-hanoi", "sha256": "<hex>", "sources":
["procedure.dossier"], "provinces": ["01"], "facilities": [], "expires": "2027-06-30"}]}``.
``"*"`` in a list means any. Keys are random and long (``hub gateway add-key`` makes them), so a
plain SHA-256 is a sound hash for them. The file is written mode 0600; the gateway re-reads it
on SIGHUP, so a revoked key stops working without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from hub.domain.text import PRINCIPAL_NAME
from hub.tls import TlsError, subject_name


@dataclass(frozen=True)
class Credential:
    name: str
    sha256: str
    sources: frozenset[str]
    provinces: frozenset[str]
    facilities: frozenset[str] = frozenset()
    expires: date | None = None
    # RFC 4514 subject of the client certificate this key must arrive with (mutual TLS), e.g.
    # "CN=hotich-79,O=So Tu phap TP HCM": a stolen key alone is then not enough.
    client_cert_subject: str | None = None

    def may_publish(self, source: str) -> bool:
        return "*" in self.sources or source in self.sources

    def may_publish_for(self, province: str) -> bool:
        return "*" in self.provinces or province in self.provinces

    def may_publish_from(self, facility: str) -> bool:
        """FHIR: a key speaks for the facilities it is bound to, and no others."""
        return "*" in self.facilities or facility in self.facilities

    def expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires


def check_scope(name: str, sources: Iterable[str], provinces: Iterable[str]) -> None:
    """Refuse a key name, source or province a new key must not have (see Credentials.add)."""
    from hub.domain.units import admin_units
    from hub.metrics import SOURCE_LABELS

    if not PRINCIPAL_NAME.fullmatch(name):
        raise CredentialsError(f"key name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                               "starting with a letter or digit")  # fmt: skip
    if unknown := sorted(set(sources) - {"*", *SOURCE_LABELS}):
        raise CredentialsError(f"unknown source {', '.join(unknown)}; one of "
                               f"{', '.join(SOURCE_LABELS)} or '*'")  # fmt: skip
    if unknown := sorted(set(provinces) - {"*", *admin_units().provinces}):
        raise CredentialsError(f"unknown 2025 province code {', '.join(unknown)} (the 34 "
                               "provinces since July 2025, e.g. 01 Hà Nội) or '*'")  # fmt: skip


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class CredentialsError(ValueError):
    """The credentials file cannot be used."""


class Credentials:
    def __init__(self, entries: list[Credential]) -> None:
        self.entries = entries

    @classmethod
    def load(cls, path: Path) -> Credentials:
        if not path.exists():
            return cls([])
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            loaded = cls([
                Credential(
                    e["name"], e["sha256"], frozenset(e["sources"]), frozenset(e["provinces"]),
                    frozenset(e.get("facilities", [])),
                    date.fromisoformat(e["expires"]) if e.get("expires") else None,
                    e.get("client_cert_subject"),
                )
                for e in data.get("keys", [])
            ])  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialsError(f"{path}: not a credentials file ({exc})") from exc
        for entry in loaded.entries:
            if entry.client_cert_subject is not None:
                try:
                    subject_name(entry.client_cert_subject)
                except TlsError as exc:
                    raise CredentialsError(f"{path}: key {entry.name}: {exc}") from exc
        return loaded

    def find(self, key: str, today: date | None = None) -> Credential | None:
        """The credential of ``key`` if it exists and has not expired."""
        wanted = digest(key)
        today = today or datetime.now(UTC).date()
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, wanted):
                return None if entry.expired(today) else entry
        return None

    def add(self, path: Path, name: str, sources: list[str], provinces: list[str],
            facilities: list[str] | None = None, expires: date | None = None,
            client_cert_subject: str | None = None) -> str:  # fmt: skip
        """Create a key for ``name``, store its hash in ``path`` and return the key (once).

        Refused (CredentialsError): a name that is not 1-64 letters, digits, ".", "_" or "-"
        starting with a letter or digit (names go into the audit trail and logs); a source or
        2025 province code that does not exist (a typo would make a key that can never
        publish, found only when a province's requests start failing)."""
        check_scope(name, sources, provinces)
        if any(e.name == name for e in self.entries):
            raise CredentialsError(f"a key named {name!r} exists; revoke it first")
        key = secrets.token_urlsafe(32)
        self.entries.append(Credential(name, digest(key), frozenset(sources),
                                       frozenset(provinces), frozenset(facilities or []),
                                       expires, client_cert_subject))  # fmt: skip
        self.save(path)
        return key

    def revoke(self, path: Path, name: str) -> bool:
        """Remove ``name``'s key; False when there is none."""
        before = len(self.entries)
        self.entries = [e for e in self.entries if e.name != name]
        if len(self.entries) == before:
            return False
        self.save(path)
        return True

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": [
            {"name": e.name, "sha256": e.sha256, "sources": sorted(e.sources),
             "provinces": sorted(e.provinces), "facilities": sorted(e.facilities),
             "expires": e.expires.isoformat() if e.expires else None,
             "client_cert_subject": e.client_cert_subject} for e in self.entries
        ]}, indent=2)  # fmt: skip
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, path)  # a reloading gateway never reads half a file
