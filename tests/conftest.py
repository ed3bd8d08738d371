"""Shared fixtures: the real local broker; integration tests may not skip in CI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from hub.kafka import local as kafka_local
from hub.settings import Settings
from hub.store.ingest import IngestLedger
from hub.store.sql import open_store

REPO = Path(__file__).resolve().parent.parent
HUB = [sys.executable, "-m", "hub"]


def _integration_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("HUB_REQUIRE_INTEGRATION") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    # In CI nothing may skip: a skipped integration test (or a test whose real tool is
    # missing: promtool, docker-compose) would hide exactly what CI exists to check.
    if report.skipped and _integration_required():
        report.outcome = "failed"
        report.longrepr = f"test skipped where it must run (CI): {report.longrepr}"


def run_hub(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the project's own `hub` command, as a user would."""
    return subprocess.run(
        [*HUB, *args], cwd=REPO, capture_output=True, text=True, check=check,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def kafka_broker(settings: Settings, pytestconfig: pytest.Config) -> Generator[Settings]:
    """A running local broker: started with `hub kafka start` when it is not running."""
    started_here = False
    if not kafka_local.status(settings).running:
        try:
            run_hub("kafka", "start")
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"local Kafka broker could not start: {exc.stderr.strip()}")
        started_here = True
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")
    line = run_hub("kafka", "status").stdout.strip()
    if reporter is not None:
        reporter.write_line(f"broker: {line}")
    run_hub("topics", "create")
    yield settings
    if started_here and os.environ.get("HUB_KEEP_BROKER") != "1":
        run_hub("kafka", "stop")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL (the Debian package's cluster, started by deploy/postgres)."""
    url = os.environ.get("HUB_TEST_PG_URL")
    if url:
        return url
    done = subprocess.run(["bash", str(REPO / "deploy" / "postgres" / "start-local.sh")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"PostgreSQL could not start: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def new_pg_schema(base_url: str, prefix: str = "t") -> str:
    """A URL of ``base_url`` whose search path is a fresh schema: a store of the test's own."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base_url}?options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def ingest_ledger(tmp_path: Path) -> Iterator[IngestLedger]:
    """The gateway's ledger on a store of the test's own (SQLite)."""
    store = open_store(f"sqlite:///{tmp_path / 'ingest.sqlite3'}")
    yield IngestLedger(store, timedelta(days=7))
    store.close()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Topic and group names of a test's own, so tests never see each other's data."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"test.{base}.{suffix}"
