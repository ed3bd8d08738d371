"""Hardening without services: poison isolation at the sink, redaction, the gateway's bounds."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from connectors.ingest.gateway import TokenBucket, too_deep
from hub.redaction import install_log_redaction, redact
from hub.store.sql import StoreRejected, refused_data, write_isolating


def test_bisection_writes_every_accepted_row_once_and_names_each_refused_one() -> None:
    stored: list[int] = []
    calls = 0

    def write(rows: Sequence[int]) -> int:
        nonlocal calls
        calls += 1
        if any(r % 97 == 0 for r in rows):  # the "database" refuses multiples of 97
            raise StoreRejected(f"refused {next(r for r in rows if r % 97 == 0)}")
        stored.extend(rows)
        return len(rows)

    rows = list(range(1, 501))
    inserted, refused = write_isolating(rows, write)
    poison = [r for r in rows if r % 97 == 0]
    assert sorted(stored) == [r for r in rows if r % 97 != 0], "each accepted row exactly once"
    assert inserted == 500 - len(poison)
    assert [item for item, _ in refused] == poison
    assert all(message == f"refused {item}" for item, message in refused)
    assert calls < 2 * len(poison) * 10, "bisection, not a row at a time"


def test_a_clean_batch_is_one_write() -> None:
    assert write_isolating([1, 2, 3], len) == (3, [])


def test_an_outage_is_not_a_refusal_and_propagates() -> None:
    def write(rows: Sequence[int]) -> int:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError):
        write_isolating([1, 2], write)
    assert refused_data(sqlite3.IntegrityError("CHECK constraint failed"))
    assert not refused_data(sqlite3.OperationalError("unable to open database file"))


def test_passwords_are_redacted_from_urls_and_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    url = "postgresql://hub:s3cr%40t-pw@db.internal:5432/hub?sslmode=require"
    assert redact(url) == "postgresql://hub:***@db.internal:5432/hub?sslmode=require"
    assert redact(f"cannot connect to {url}: refused") == (
        "cannot connect to postgresql://hub:***@db.internal:5432/hub?sslmode=require: refused"
    )
    assert redact("host=db password='x y' user=hub") == "host=db password=*** user=hub"
    assert redact("sqlite:////var/lib/hub/store.sqlite3") == "sqlite:////var/lib/hub/store.sqlite3"
    install_log_redaction()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("psycopg.somewhere").warning("store %s failed", url)
    assert "s3cr" not in caplog.text and "hub:***@db.internal" in caplog.text


def test_the_token_bucket_refills_at_its_rate_per_credential() -> None:
    bucket = TokenBucket(rate=10, capacity=20)
    assert bucket.take("a", 20, now=0.0) == 0
    assert bucket.take("a", 5, now=0.0) == pytest.approx(0.5)
    assert bucket.take("b", 20, now=0.0) == 0, "another credential has its own bucket"
    assert bucket.take("a", 5, now=0.5) == 0
    assert TokenBucket(rate=0, capacity=0).take("a", 10**6) == 0, "0 means unlimited"


def test_depth_is_measured_without_recursion() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(100_000):
        child: list[object] = []
        node.append(child)
        node = child
    assert too_deep(deep, 32)
    assert not too_deep({"a": [{"b": 1}]}, 3)
    assert too_deep({"a": [{"b": [1]}]}, 3)


def test_files_with_personal_data_are_owner_only(tmp_path: Path) -> None:
    from hub.store.sql import open_store

    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.close()
    assert (tmp_path / "store.sqlite3").stat().st_mode & 0o077 == 0
