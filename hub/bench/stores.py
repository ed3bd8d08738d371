"""Where a bench measurement's workers store their events, and how the bench reads them back.

A fresh store a measurement: an SQLite file in the measurement's own directory (the embedded
default), or, given a PostgreSQL URL, a schema of its own in that database (created empty,
dropped afterwards), so a run never counts another's rows. The workers get :attr:`url` as their
``HUB_STORE_URL``; the bench reads the ``events`` table with :meth:`count` and :meth:`times`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.store.sql import create_schema

Times = tuple[datetime, datetime, datetime]  # occurred, ingested (its batch began), stored


def as_time(value: Any) -> datetime:
    """A timestamp column as the store gives it: text in SQLite, a datetime in PostgreSQL."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class BenchStore:
    """One measurement's store: SQLite at ``home/store.sqlite3`` unless ``postgres_url`` is
    given (then a schema ``bench_<hex>`` in that database)."""

    def __init__(self, home: Path, postgres_url: str | None = None) -> None:
        self.path = home / "store.sqlite3"
        self.base = postgres_url
        self.schema: str | None = None
        if postgres_url is None:
            self.url = f"sqlite:///{self.path}"
            return
        self.schema, self.url = create_schema(postgres_url, "bench")

    @property
    def kind(self) -> str:
        return "SQLite" if self.schema is None else "PostgreSQL"

    @staticmethod
    def _postgres(url: str) -> Any:
        import psycopg

        return psycopg.connect(url, autocommit=True)  # closed by ``with``

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.schema is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()
        with self._postgres(self.url) as pg:
            return [tuple(row) for row in pg.execute(sql).fetchall()]

    def count(self) -> int:
        """Rows in ``events``; 0 while the workers have not made the table yet."""
        try:
            return int(self._rows("SELECT count(*) FROM events")[0][0])
        except Exception:  # noqa: BLE001 - no table yet (either driver's error): nothing stored
            return 0

    def times(self) -> list[Times]:
        """Each stored event's occurred, ingested and stored moments."""
        rows = self._rows("SELECT occurred_at, ingested_at, stored_at FROM events")
        return [(as_time(o), as_time(i), as_time(s)) for o, i, s in rows]

    def close(self) -> None:
        """Drop the PostgreSQL schema (an SQLite file goes with its directory)."""
        if self.schema is not None and self.base is not None:
            with self._postgres(self.base) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
