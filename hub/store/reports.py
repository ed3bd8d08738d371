"""Read-side queries of the central store for the hub-wide reports (``hub kpi``, the KPI
exporter): the same SQL on SQLite and PostgreSQL, folded by the pure functions of
hub/domain/indicators.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.domain.indicators import HistoryRow
from hub.store.sql import Store


def as_moment(value: Any) -> datetime:
    """SQLite hands timestamps back as ISO text, PostgreSQL as datetimes."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def dossier_history(store: Store, until: datetime, province: str | None = None,
                    procedure: str | None = None) -> list[HistoryRow]:  # fmt: skip
    """Status changes of every dossier received before ``until`` (optionally one province's
    or one procedure's)."""
    sql = (
        "SELECT dossier_code, province_code, procedure_code, channel, status, at, received_at, "
        "due_at, completed_at, receiving_level FROM dossier_history WHERE received_at < ?"
    )
    params: list[Any] = [until.astimezone(UTC)]
    if province is not None:
        sql += " AND province_code = ?"
        params.append(province)
    if procedure is not None:
        sql += " AND procedure_code = ?"
        params.append(procedure)
    return [
        HistoryRow(code, prov, proc, channel, status, as_moment(at), as_moment(received),
                   as_moment(due), as_moment(done) if done is not None else None,
                   level or "UNKNOWN")
        for code, prov, proc, channel, status, at, received, due, done, level
        in store.query(sql, params)
    ]  # fmt: skip
