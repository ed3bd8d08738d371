"""`hub demo` end to end: it runs, stores events, dead-letters poison by reason, loses nothing
(traffic starts while the worker is still recovering its tables) and leaves no process behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.integration.workers import REPO, free_port

pytestmark = pytest.mark.integration


def hub_processes(home: Path) -> list[str]:
    """`hub worker` processes started with this HUB_HOME (from /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if "hub worker" in cmd and f"HUB_HOME={home}".encode() in env:
            found.append(pid)
    return found


def test_demo_runs_stores_dead_letters_and_shuts_down_cleanly(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    home = tmp_path / "hub"
    env = {**os.environ, "HUB_HOME": str(home), "HUB_APP_ID": f"demo-{uuid.uuid4().hex[:8]}",
           "HUB_METRICS_PORT": str(free_port()), "COLUMNS": "120"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "hub", "demo", "--duration", "20", "--rate", "150"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]

    def figure(label: str) -> int:
        match = re.search(rf"{re.escape(label)}\s*│\s*(\d+)", out)
        assert match, f"{label!r} not in the summary:\n{out[-3000:]}"
        return int(match.group(1))

    assert figure("events stored") > 0
    assert figure("valid events missing from the store") == 0
    assert figure("dead letters") > 0
    assert "Dead letters by reason" in out and "unknown_fingerprint" in out
    assert "exited with code 0" in out
    assert hub_processes(home) == [], "a worker was left behind"
