"""Shared fixtures: the real local broker; integration tests may not skip in CI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from hub.kafka import local as kafka_local
from hub.kafka.client import Connectable, connection
from hub.settings import Settings
from hub.store.ingest import IngestLedger
from hub.store.sql import create_schema, open_store

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


def samples(*families: MetricWrapperBase) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``families``: (series name, its labels sorted) → value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families for m in family.collect() for s in m.samples}  # fmt: skip


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


SECURE_HOME = REPO / ".hub" / "secure-broker"
SECURE_ENV = {"HUB_HOME": str(SECURE_HOME), "HUB_KAFKA_BOOTSTRAP": "127.0.0.1:9192",
              "HUB_KAFKA_CONTROLLER_PORT": "9193"}  # fmt: skip


@dataclass
class Broker:
    """A broker the tests run against: ``kafka`` is the test harness's own (super user on the
    secure broker); :meth:`client_env` gives a hub process its own principal of a role."""

    name: str
    settings: Settings
    kafka: Connectable
    secure: bool = False
    _users: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def client_env(self, role: str, group: str = "") -> dict[str, str]:
        """Environment of a hub process as a new principal of ``role`` (PLAINTEXT: nothing)."""
        if not self.secure:
            return {}
        if (role, group) not in self._users:
            name = f"{role.replace(':', '-').lower()}-{uuid.uuid4().hex[:6]}"
            args = ["kafka", "users", "add", name, "--role", role]
            run_hub(*args, *(["--group", group] if group else []), env=SECURE_ENV)
            self._users[(role, group)] = {
                "HUB_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "HUB_KAFKA_USERNAME": name,
                "HUB_KAFKA_PASSWORD_FILE": str(
                    SECURE_HOME / "kafka" / "users" / f"{name}.password"
                ),
                "HUB_KAFKA_CA_FILE": str(SECURE_HOME / "kafka" / "secure" / "ca.pem"),
            }
        return self._users[(role, group)]

    def connection(self, role: str, group: str = "") -> Connectable:
        """A client connection as a principal of ``role`` (the harness's own on PLAINTEXT)."""
        if not self.secure:
            return self.kafka
        env = self.client_env(role, group)
        return connection(Settings(
            kafka_bootstrap=env["HUB_KAFKA_BOOTSTRAP"], kafka_security_protocol="SASL_SSL",
            kafka_username=env["HUB_KAFKA_USERNAME"],
            kafka_password_file=Path(env["HUB_KAFKA_PASSWORD_FILE"]),
            kafka_ca_file=Path(env["HUB_KAFKA_CA_FILE"]),
        ))  # fmt: skip


@pytest.fixture(scope="session")
def secure_broker(pytestconfig: pytest.Config) -> Generator[Broker]:
    """The local broker started with `hub kafka start --secure` (SASL_SSL, ACLs), beside the
    PLAINTEXT one, with the hub's topics created by its admin."""
    secure_settings = Settings(home=SECURE_HOME, kafka_bootstrap=SECURE_ENV["HUB_KAFKA_BOOTSTRAP"],
                               kafka_controller_port=9193)  # fmt: skip
    started_here = False
    if not kafka_local.status(secure_settings).running:
        try:
            run_hub("kafka", "start", "--secure", env=SECURE_ENV)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"secure local Kafka broker could not start: {exc.stderr.strip()}")
        started_here = True
    admin = kafka_local.admin_connection(secure_settings)
    material = kafka_local.secure_material(secure_settings)
    admin_env = {**SECURE_ENV, "HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                 "HUB_KAFKA_USERNAME": "admin",
                 "HUB_KAFKA_PASSWORD_FILE": str(material.admin_password_file),
                 "HUB_KAFKA_CA_FILE": str(material.ca.cert_file)}  # fmt: skip
    run_hub("topics", "create", env=admin_env)
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        line = run_hub("kafka", "status", env=SECURE_ENV).stdout.strip()
        reporter.write_line(f"secure broker: {line}")
    yield Broker("secure", secure_settings, admin, secure=True)
    if started_here and os.environ.get("HUB_KEEP_BROKER") != "1":
        run_hub("kafka", "stop", env=SECURE_ENV)


@pytest.fixture(params=["plaintext", "sasl_ssl"])
def any_broker(request: pytest.FixtureRequest) -> Broker:
    """The test runs twice: on the PLAINTEXT broker and on the secure one (issue 12)."""
    if request.param == "plaintext":
        plain: Settings = request.getfixturevalue("kafka_broker")
        return Broker("plaintext", plain, plain.kafka_bootstrap)
    secure: Broker = request.getfixturevalue("secure_broker")
    return secure


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
    return create_schema(base_url, prefix)[1]


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
