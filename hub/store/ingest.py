"""The gateway's ledger in the central store: idempotency per credential, event-id ownership and
the audit trail. Durable and shared, so a restarted gateway or a second replica honours them.

- ``ingest_requests``: (credential, Idempotency-Key) → body SHA-256 and the event ids it
  produced. The key's scope is the credential: another credential's key is unrelated.
- ``ingest_events``: which credential produced an event id. Another credential sending the same
  id gets 409 ``event_id_conflict`` (it could otherwise pre-empt a real event, which would then
  be answered 202 and dropped by the worker as a duplicate).
- ``ingest_audit``: append-only, one row per request, whatever its answer.

Rows older than the retention window are pruned (``prune``); the audit trail is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.store.sql import Store


@dataclass(frozen=True)
class Fresh:
    """Produce ``to_produce``; the others this credential already produced (a retry)."""

    to_produce: list[str]


@dataclass(frozen=True)
class Replay:
    """The same key and body again: answer with the first answer's ids, produce nothing."""

    event_ids: list[str]


@dataclass(frozen=True)
class KeyReused:
    """The same key with a different body from the same credential."""


@dataclass(frozen=True)
class Conflict:
    """Event ids another credential produced (or is producing)."""

    event_ids: list[str]


Reservation = Fresh | Replay | KeyReused | Conflict


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    credential: str | None
    remote: str
    method: str
    path: str
    status: int
    event_ids: list[str]
    body_sha256: str
    idempotency_key: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat()}


def _in(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


class IngestLedger:
    """Synchronous, like the store; the gateway calls it from a thread, one call at a time."""

    def __init__(self, store: Store, retention: timedelta) -> None:
        self.store = store
        self.retention = retention

    def reserve(self, credential: str, key: str | None, body_sha256: str,
                event_ids: list[str], now: datetime) -> Reservation:  # fmt: skip
        """Decide what a request may produce, and claim its event ids for ``credential``."""
        with self.store.transaction() as tx:
            if key is not None:
                rows = tx.execute(
                    "SELECT body_sha256, event_ids FROM ingest_requests "
                    "WHERE credential = ? AND idempotency_key = ?", (credential, key))  # fmt: skip
                if rows:
                    sha, ids = rows[0]
                    if sha != body_sha256:
                        return KeyReused()
                    return Replay([i for i in str(ids).split(",") if i])
            if not event_ids:
                return Fresh([])
            tx.executemany(
                "INSERT INTO ingest_events VALUES (?,?,?,?) ON CONFLICT (event_id) DO NOTHING",
                [(i, credential, False, now) for i in event_ids],
            )
            owners = tx.execute(
                f"SELECT event_id, credential, produced FROM ingest_events "
                f"WHERE event_id IN ({_in(event_ids)})", event_ids)  # fmt: skip
        foreign = sorted(str(e) for e, owner, _ in owners if owner != credential)
        if foreign:
            self.release(credential, [e for e in event_ids if e not in foreign])
            return Conflict(foreign)
        done = {str(e) for e, _, produced in owners if produced}
        return Fresh([e for e in event_ids if e not in done])

    def produced(self, credential: str, key: str | None, body_sha256: str,
                 event_ids: list[str], now: datetime) -> None:  # fmt: skip
        """Kafka acknowledged the request's events: make the claims and the key durable."""
        with self.store.transaction() as tx:
            if event_ids:
                tx.execute(
                    f"UPDATE ingest_events SET produced = TRUE WHERE credential = ? "
                    f"AND event_id IN ({_in(event_ids)})", [credential, *event_ids])  # fmt: skip
            if key is not None:
                tx.execute(
                    "INSERT INTO ingest_requests VALUES (?,?,?,?,?) "
                    "ON CONFLICT (credential, idempotency_key) DO NOTHING",
                    (credential, key, body_sha256, ",".join(event_ids), now),
                )

    def release(self, credential: str, event_ids: list[str]) -> None:
        """Kafka did not take them: drop this credential's unproduced claims."""
        if not event_ids:
            return
        with self.store.transaction() as tx:
            tx.execute(
                f"DELETE FROM ingest_events WHERE credential = ? AND produced = FALSE "
                f"AND event_id IN ({_in(event_ids)})", [credential, *event_ids])  # fmt: skip

    def audit(self, entry: AuditEntry) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO ingest_audit VALUES (?,?,?,?,?,?,?,?,?)",
                (entry.at, entry.credential, entry.remote, entry.method, entry.path,
                 entry.status, ",".join(entry.event_ids), entry.body_sha256,
                 entry.idempotency_key),
            )  # fmt: skip

    def prune(self, now: datetime) -> None:
        """Forget keys and claims older than the retention window (the audit trail stays)."""
        cutoff = now - self.retention
        with self.store.transaction() as tx:
            tx.execute("DELETE FROM ingest_requests WHERE received_at < ?", (cutoff,))
            tx.execute("DELETE FROM ingest_events WHERE received_at < ?", (cutoff,))

    def trail(self, credential: str | None = None, since: datetime | None = None,
              limit: int = 1000) -> list[AuditEntry]:  # fmt: skip
        """The audit trail, oldest first, optionally for one credential and from ``since``."""
        where: list[str] = []
        params: list[Any] = []
        if credential is not None:
            where.append("credential = ?")
            params.append(credential)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        sql = "SELECT * FROM ingest_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY at LIMIT {int(limit)}"
        return [
            AuditEntry(
                at=at if isinstance(at, datetime) else datetime.fromisoformat(str(at)),
                credential=cred, remote=remote, method=method, path=path, status=int(status),
                event_ids=[i for i in str(ids).split(",") if i], body_sha256=sha,
                idempotency_key=key,
            )
            for at, cred, remote, method, path, status, ids, sha, key in self.store.query(
                sql, params
            )
        ]  # fmt: skip
