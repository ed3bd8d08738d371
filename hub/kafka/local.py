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

from hub import tls
from hub.kafka.access import new_password
from hub.kafka.admin import broker_answers
from hub.kafka.client import KafkaConnection
from hub.settings import KafkaSecurity, Settings

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"
LIB_DIR = DEPLOY_DIR / "lib"
POM = DEPLOY_DIR / "pom.xml"
LOG4J_CONFIG = DEPLOY_DIR / "log4j2.yaml"

ADMIN = "admin"  # the super user bootstrapped into a secure broker's metadata at format time
BROKER_SUBJECT = "CN=hub-local-broker"  # its principal towards the controller

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
    security: KafkaSecurity = KafkaSecurity.PLAINTEXT


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


@dataclass(frozen=True)
class SecureMaterial:
    """What a secure local broker needs: its CA, keystore and the admin's password (0600)."""

    directory: Path
    ca: tls.Issued
    keystore: Path
    keystore_password: str
    admin_password: str

    @property
    def admin_password_file(self) -> Path:
        return self.directory / "admin.password"


def _secret(path: Path) -> str:
    """The secret in ``path``, created (random, 0600) the first time."""
    if not path.exists():
        tls.write_private(path, new_password() + "\n")
    return path.read_text().strip()


def secure_material(settings: Settings) -> SecureMaterial:
    """The local CA, the broker's certificate and keystore, the admin password: made once."""
    directory = settings.kafka_dir / "secure"
    ca = tls.new_authority(directory, "Lienthong Hub local CA")
    host, _ = settings.kafka_host_port
    keystore = directory / "broker.p12"
    store_password = _secret(directory / "keystore.password")
    if not keystore.exists():
        broker = tls.issue_certificate(ca, directory / "broker", BROKER_SUBJECT,
                                       hosts=sorted({host, "localhost", "127.0.0.1"}),
                                       server=True, client=True)  # fmt: skip
        tls.pkcs12_keystore(broker, ca, keystore, store_password)
    return SecureMaterial(directory, ca, keystore, store_password,
                          _secret(directory / "admin.password"))  # fmt: skip


def admin_connection(settings: Settings) -> KafkaConnection:
    """The local secure broker's super user (what `hub kafka users` and status use)."""
    material = secure_material(settings)
    return KafkaConnection(settings.kafka_bootstrap, KafkaSecurity.SASL_SSL, "SCRAM-SHA-512",
                           ADMIN, material.admin_password, material.ca.cert_file)  # fmt: skip


def _mode_file(settings: Settings) -> Path:
    return settings.kafka_dir / "security"


def local_security(settings: Settings) -> KafkaSecurity:
    """How the local broker in HUB_HOME was formatted (PLAINTEXT before it says otherwise)."""
    try:
        return KafkaSecurity(_mode_file(settings).read_text().strip())
    except (FileNotFoundError, ValueError):
        return KafkaSecurity.PLAINTEXT


def _local_connection(settings: Settings) -> KafkaConnection | str:
    if local_security(settings) is KafkaSecurity.SASL_SSL:
        return admin_connection(settings)
    return settings.kafka_bootstrap


def _secure_properties(settings: Settings, material: SecureMaterial) -> dict[str, str]:
    host, port = settings.kafka_host_port
    cport = settings.kafka_controller_port
    jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{material.admin_password}";')  # fmt: skip
    return {
        "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"SASL_SSL://{host}:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        # A JAAS entry per enabled mechanism (the broker refuses to start without one).
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(material.keystore.resolve()),
        "ssl.keystore.password": material.keystore_password,
        "ssl.key.password": material.keystore_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca.cert_file.resolve()),
        # The controller listener takes only certificates of this CA: its principal is the
        # broker's certificate subject, a super user like the admin.
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN};User:{BROKER_SUBJECT}",
    }


def server_properties(settings: Settings, material: SecureMaterial | None = None) -> str:
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
    if material is not None:
        lines |= _secure_properties(settings, material)
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


# Kafka's reserved ids (org.apache.kafka.common.Uuid: ZERO_UUID, the metadata topic's ONE_UUID).
_RESERVED_IDS = frozenset({bytes(16), bytes(15) + b"\x01"})


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (22 characters).

    Drawn again, as Kafka's own ``Uuid.randomUuid()`` does, when reserved or when the text
    starts with "-" (one draw in 64): the storage tool's argument parser would read such an
    id as an option (``kafka-storage: error: argument --cluster-id/-t: expected one
    argument``).
    """
    while True:
        raw = uuid.uuid4().bytes
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if raw not in _RESERVED_IDS and not text.startswith("-"):
            return text


def format_storage(java: str, props: Path, cluster_id: str, admin_password: str | None) -> None:
    """Format the broker's metadata directory (``kafka-storage format``) for ``cluster_id``.

    The id is passed as ``--cluster-id=ID``, the one spelling the parser cannot mistake for
    an option, whatever the id; with ``admin_password`` the SCRAM admin user is added.
    """
    scram = f"SCRAM-SHA-512=[name={ADMIN},password={admin_password}]"
    fmt = subprocess.run(
        [java, "-cp", f"{LIB_DIR}/*", "kafka.tools.StorageTool", "format",
         f"--cluster-id={cluster_id}", "-c", str(props), "--ignore-formatted",
         *(["--add-scram", scram] if admin_password is not None else [])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if fmt.returncode != 0:
        raise BrokerError("formatting broker storage failed: " + fmt.stderr.strip()[-300:])


def status(settings: Settings) -> BrokerStatus:
    pid = _read_pid(settings)
    answers = asyncio.run(broker_answers(_local_connection(settings))) if pid else False
    return BrokerStatus(bool(pid and answers), pid, settings.kafka_bootstrap, kafka_version(),
                        local_security(settings))  # fmt: skip


def start(settings: Settings, secure: bool = False) -> BrokerStatus:
    """Start the broker unless it runs; return once it answers a metadata request.

    ``secure`` (or HUB_KAFKA_SECURITY_PROTOCOL=SASL_SSL): SASL_SSL with SCRAM on the bootstrap
    port, TLS with client certificates on the controller port, the StandardAuthorizer with
    nothing allowed that no ACL allows, and the ``admin`` super user (docs/SECURITY.md).
    """
    java = _require("java", "a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)")
    secure = secure or settings.kafka_security_protocol is KafkaSecurity.SASL_SSL
    wanted = KafkaSecurity.SASL_SSL if secure else KafkaSecurity.PLAINTEXT
    formatted = (settings.kafka_dir / "data" / "meta.properties").exists()
    if formatted and local_security(settings) is not wanted:
        raise BrokerError(
            f"the broker in {settings.kafka_dir} was set up {local_security(settings).value}, not "
            f"{wanted.value}: use another HUB_HOME (and ports), or delete {settings.kafka_dir}"
        )
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
    material = secure_material(settings) if secure else None
    props.touch(mode=0o600)  # it holds the keystore and admin passwords when secure
    props.chmod(0o600)
    props.write_text(server_properties(settings, material))
    classpath = f"{LIB_DIR}/*"
    if not (kdir / "data" / "meta.properties").exists():
        format_storage(java, props, _cluster_id(), material.admin_password if material else None)
        _mode_file(settings).write_text(wanted.value + "\n")
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
        if asyncio.run(broker_answers(_local_connection(settings), timeout_s=2.0)):
            return BrokerStatus(True, proc.pid, settings.kafka_bootstrap, kafka_version(), wanted)
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
