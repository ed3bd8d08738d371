"""The local single-node KRaft broker used for development, the demo, tests and benchmarks.

Jars come from Maven Central through ``deploy/kafka/pom.xml``; the broker runs with the
machine's JDK. State lives under ``<HUB_HOME>/kafka/``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hub.kafka.admin import broker_answers
from hub.settings import Settings

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
LIB_DIR = DEPLOY_DIR / "lib"
POM = DEPLOY_DIR / "pom.xml"
LOG4J_CONFIG = DEPLOY_DIR / "log4j2.yaml"

# SIGTERM triggers a controlled shutdown; on this machine it completes in a few seconds.
STOP_TIMEOUT_S = 60.0


class BrokerError(Exception):
    """The local broker cannot be prepared, started or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    address: str
    version: str | None


def _require(tool: str, install_hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"`{tool}` not found on PATH: install {install_hint}")
    return path


def resolve_jars(quiet: bool = True) -> Path:
    """Resolve the broker's classpath from Maven Central into ``deploy/kafka/lib`` once."""
    marker = LIB_DIR / ".resolved"
    if marker.exists() and marker.stat().st_mtime >= POM.stat().st_mtime:
        return LIB_DIR
    mvn = _require("mvn", "Apache Maven (Debian: apt-get install maven)")
    _require("java", "a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)")
    if LIB_DIR.exists():
        shutil.rmtree(LIB_DIR)
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies"]
    cmd.append(f"-DoutputDirectory={LIB_DIR}")
    if quiet:
        cmd.insert(1, "-q")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise BrokerError("resolving Kafka jars with Maven failed: " + " | ".join(tail))
    marker.touch()
    return LIB_DIR


def kafka_version() -> str | None:
    """The Kafka version on the resolved classpath, read from the jar name."""
    for jar in sorted(LIB_DIR.glob("kafka_2.13-*.jar")):
        match = re.fullmatch(r"kafka_2\.13-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    return None


def server_properties(settings: Settings) -> str:
    """The broker+controller configuration of a single combined KRaft node."""
    host, port = settings.kafka_host_port
    cport = settings.kafka_controller_port
    data_dir = (settings.kafka_dir / "data").resolve()
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(settings.partitions),
        # One node: every internal topic has exactly one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Tests and the demo start consumers often; do not wait 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created explicitly by `hub topics create`; typos must not create topics.
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def _pid_file(settings: Settings) -> Path:
    return settings.kafka_dir / "broker.pid"


def _log_file(settings: Settings) -> Path:
    return settings.kafka_dir / "broker.log"


def _read_pid(settings: Settings) -> int | None:
    try:
        pid = int(_pid_file(settings).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def status(settings: Settings) -> BrokerStatus:
    pid = _read_pid(settings)
    answers = asyncio.run(broker_answers(settings.kafka_bootstrap)) if pid else False
    return BrokerStatus(bool(pid and answers), pid, settings.kafka_bootstrap, kafka_version())


def start(settings: Settings) -> BrokerStatus:
    """Start the broker unless it runs; return once it answers a metadata request."""
    java = _require("java", "a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)")
    current = status(settings)
    if current.running:
        return current
    if asyncio.run(broker_answers(settings.kafka_bootstrap)):
        raise BrokerError(
            f"something else already answers on {settings.kafka_bootstrap}; "
            "stop it or set HUB_KAFKA_BOOTSTRAP"
        )
    resolve_jars()
    kdir = settings.kafka_dir
    kdir.mkdir(parents=True, exist_ok=True)
    props = kdir / "server.properties"
    props.write_text(server_properties(settings))
    classpath = f"{LIB_DIR}/*"
    if not (kdir / "data" / "meta.properties").exists():
        fmt = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
             "-t", _cluster_id(), "-c", str(props), "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise BrokerError("formatting broker storage failed: " + fmt.stderr.strip()[-300:])
    log = _log_file(settings).open("ab")
    proc = subprocess.Popen(
        [java, *settings.kafka_heap.split(), f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
         "-cp", classpath, "kafka.Kafka", str(props)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    _pid_file(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + settings.kafka_start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(
                f"broker exited with code {proc.returncode}; see {_log_file(settings)}"
            )
        if asyncio.run(broker_answers(settings.kafka_bootstrap, timeout_s=2.0)):
            return BrokerStatus(True, proc.pid, settings.kafka_bootstrap, kafka_version())
        time.sleep(0.5)
    proc.terminate()
    raise BrokerError(
        f"broker did not answer within {settings.kafka_start_timeout_s:.0f}s; "
        f"see {_log_file(settings)}"
    )


def stop(settings: Settings) -> bool:
    """Controlled shutdown (SIGTERM, then wait). Returns False when nothing was running."""
    pid = _read_pid(settings)
    if pid is None:
        _pid_file(settings).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    _pid_file(settings).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the broker is our own child (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
