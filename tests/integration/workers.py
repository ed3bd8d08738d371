"""Helpers for integration tests that run real `hub worker` processes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from hub.kafka.client import Connectable
from hub.sim.simulator import produce
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """The rows of ``sql`` in the PostgreSQL store at ``url``."""
    import psycopg

    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def sqlite_rows(db: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    """The rows of ``sql`` in the SQLite store ``db`` (shared by workers); none before a worker
    created the store and its tables."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


async def until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 180,
                every: float = 1.0) -> T:  # fmt: skip
    """Read until what was read is ``done`` or ``timeout`` seconds passed; the last read."""
    deadline = time.monotonic() + timeout
    while not done(value := read()) and time.monotonic() < deadline:
        await asyncio.sleep(every)
    return value


class WorkerProcess:
    """A `hub worker` subprocess with its own consumer group, home and store."""

    def __init__(self, home: Path, app_id: str, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.env = {
            **os.environ,
            "HUB_HOME": str(home),
            "HUB_APP_ID": app_id,
            "HUB_METRICS_PORT": str(self.port),
            "HUB_REPORT_INTERVAL_S": "0.5",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "worker.log"

    @property
    def store_path(self) -> Path:
        return self.home / "store.sqlite3"

    def start(self, timeout: float = 90) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "worker", "--loglevel", "info"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {self.tail()}")
            if self.metrics_text() is not None:
                return
            time.sleep(0.5)
        self.kill()  # not left running (and consuming) after the test that started it fails
        raise TimeoutError("worker did not serve /metrics in time")

    def metrics_text(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        """The end of the worker's log (why it stopped, when an assertion finds it gone)."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stored(self, event_ids: Iterable[str]) -> int:
        """How many of ``event_ids`` have a row in the store."""
        if not self.store_path.exists():
            return 0
        ids = list(event_ids)
        conn = sqlite3.connect(self.store_path, timeout=30)
        try:
            conn.execute("CREATE TEMP TABLE want (id TEXT PRIMARY KEY)")
            conn.executemany("INSERT OR IGNORE INTO want VALUES (?)", [(i,) for i in ids])
            row = conn.execute("SELECT count(*) FROM events JOIN want ON events.event_id = want.id")
            return int(row.fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(self.store_path, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def wait_stored(self, event_ids: list[str], timeout: float = 180) -> int:
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            n = self.stored(event_ids)
            if n >= len(event_ids):
                return n
            time.sleep(1)
        return n


async def start_group_at_end(bootstrap: Connectable, group: str) -> None:
    """Start a fresh group at the end of every topic the worker reads, so a test counts
    exactly its own traffic."""
    from hub.domain.topics import AckTopic, AgencyTopic, SourceTopic, UnifiedTopic
    from hub.kafka.admin import start_group_at_end as start_at_end

    topics = [t.value for t in (*SourceTopic, *UnifiedTopic, *AgencyTopic, *AckTopic)]
    assert await start_at_end(bootstrap, group, topics), f"group {group} is not new"


async def traffic_for_new_group(bootstrap: Connectable, prefix: str, codec: Codec, provinces: int,
                                population: int) -> tuple[str, Traffic]:  # fmt: skip
    """A new consumer group started at the end of the worker's topics, and traffic with a random
    seed whose population register is already published: a test then sees its own events only."""
    group = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(bootstrap, group)
    traffic = Traffic(codec, seed=random.randrange(10**6), provinces=provinces,
                      population=population)  # fmt: skip
    await produce(bootstrap, traffic.register_messages())
    return group, traffic
