"""How every Kafka client of the project connects: the one place that builds client settings.

A :class:`KafkaConnection` is the bootstrap address plus the security of the connection
(PLAINTEXT, SSL or SASL_SSL with SCRAM, optionally a client certificate). Every aiokafka
client takes ``**options(kafka)``; the faust app takes :func:`faust_broker`. A bare bootstrap
string stands for a PLAINTEXT connection (the embedded demo, tests on the local broker).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hub.settings import KafkaSecurity, Settings
from hub.tls import client_context, write_private

SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


class KafkaSettingsError(ValueError):
    """The client's Kafka settings cannot work; the message names the setting."""


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: str
    security: KafkaSecurity = KafkaSecurity.PLAINTEXT
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = ""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (server verified against the CA file, else the system's trust)."""
        if self.security is KafkaSecurity.PLAINTEXT:
            return None
        return client_context(self.ca_file, self.cert_file, self.key_file)

    def describe(self) -> str:
        """``bootstrap (protocol, user)`` for messages; never the password."""
        if self.security is KafkaSecurity.PLAINTEXT:
            return self.bootstrap
        who = f", user {self.username}" if self.username else ""
        return f"{self.bootstrap} ({self.security.value}{who})"


Connectable = KafkaConnection | str


def as_connection(kafka: Connectable) -> KafkaConnection:
    return KafkaConnection(kafka) if isinstance(kafka, str) else kafka


def options(kafka: Connectable) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
    conn = as_connection(kafka)
    opts: dict[str, Any] = {"bootstrap_servers": conn.bootstrap}
    if conn.security is KafkaSecurity.PLAINTEXT:
        return opts
    opts["security_protocol"] = conn.security.value
    opts["ssl_context"] = conn.ssl_context
    if conn.security is KafkaSecurity.SASL_SSL:
        opts["sasl_mechanism"] = conn.sasl_mechanism
        opts["sasl_plain_username"] = conn.username
        opts["sasl_plain_password"] = conn.password
    return opts


def faust_broker(kafka: Connectable, scheme: str = "kafka") -> dict[str, Any]:
    """``broker`` and ``broker_credentials`` of a faust app (``scheme`` picks the transport:
    faust's ``kafka``, or the worker's ``hubkafka``, hub/kafka/transport.py)."""
    import faust
    from faust.types.auth import SASLMechanism

    conn = as_connection(kafka)
    broker = [f"{scheme}://{s.strip()}" for s in conn.bootstrap.split(",")]
    if conn.security is KafkaSecurity.PLAINTEXT:
        return {"broker": broker}
    credentials: Any
    if conn.security is KafkaSecurity.SASL_SSL:
        credentials = faust.SASLCredentials(
            username=conn.username, password=conn.password, ssl_context=conn.ssl_context,
            mechanism=SASLMechanism(conn.sasl_mechanism),
        )  # fmt: skip
    else:
        credentials = faust.SSLCredentials(conn.ssl_context)
    return {"broker": broker, "broker_credentials": credentials}


def java_client_properties(kafka: Connectable) -> dict[str, str]:
    """The same connection as Java client properties (Kafka's own tools)."""
    conn = as_connection(kafka)
    props = {"bootstrap.servers": conn.bootstrap, "security.protocol": conn.security.value}
    if conn.security is KafkaSecurity.PLAINTEXT:
        return props
    if conn.ca_file is not None:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = str(conn.ca_file)
    if conn.cert_file is not None and conn.key_file is not None:
        props["ssl.keystore.type"] = "PEM"
        props["ssl.keystore.certificate.chain"] = _one_line(conn.cert_file)
        props["ssl.keystore.key"] = _one_line(conn.key_file)
    if conn.security is KafkaSecurity.SASL_SSL:
        props["sasl.mechanism"] = conn.sasl_mechanism
        props["sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{_jaas_escape(conn.username)}" password="{_jaas_escape(conn.password)}";'
        )
    return props


def write_java_client_properties(kafka: Connectable, path: Path) -> Path:
    """:func:`java_client_properties` as a properties file, 0600 (it may hold a password)."""
    props = java_client_properties(kafka)
    write_private(path, "".join(f"{key}={value}\n" for key, value in props.items()))
    return path


def _one_line(path: Path) -> str:
    return " ".join(path.read_text().split("\n")).strip()


def _jaas_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _readable(path: Path | None, setting: str) -> Path | None:
    if path is None:
        return None
    if not path.is_file():
        raise KafkaSettingsError(f"{setting}: {path} is not a readable file")
    try:
        path.read_bytes()
    except OSError as exc:
        raise KafkaSettingsError(f"{setting}: {path}: {exc.strerror}") from exc
    return path


def connection(settings: Settings) -> KafkaConnection:
    """The connection the settings describe, checked: a wrong setting fails here, named."""
    security = settings.kafka_security_protocol
    if security is KafkaSecurity.PLAINTEXT:
        return KafkaConnection(settings.kafka_bootstrap)
    ca = _readable(settings.kafka_ca_file, "HUB_KAFKA_CA_FILE")
    cert = _readable(settings.kafka_cert_file, "HUB_KAFKA_CERT_FILE")
    key = _readable(settings.kafka_key_file, "HUB_KAFKA_KEY_FILE")
    if (cert is None) != (key is None):
        missing = "HUB_KAFKA_KEY_FILE" if key is None else "HUB_KAFKA_CERT_FILE"
        raise KafkaSettingsError(
            f"{missing}: required with the other half of the client certificate "
            "(HUB_KAFKA_CERT_FILE and HUB_KAFKA_KEY_FILE go together)"
        )
    username = password = ""
    mechanism = settings.kafka_sasl_mechanism
    if security is KafkaSecurity.SASL_SSL:
        if mechanism not in SCRAM_MECHANISMS:
            raise KafkaSettingsError(
                f"HUB_KAFKA_SASL_MECHANISM: {mechanism!r} is not one of "
                f"{', '.join(SCRAM_MECHANISMS)}"
            )
        if not settings.kafka_username:
            raise KafkaSettingsError("HUB_KAFKA_USERNAME: required with SASL_SSL")
        if settings.kafka_password_file is None:
            raise KafkaSettingsError("HUB_KAFKA_PASSWORD_FILE: required with SASL_SSL")
        path = _readable(settings.kafka_password_file, "HUB_KAFKA_PASSWORD_FILE")
        assert path is not None
        password = path.read_text().strip()
        if not password:
            raise KafkaSettingsError(f"HUB_KAFKA_PASSWORD_FILE: {path} is empty")
        username = settings.kafka_username
    conn = KafkaConnection(settings.kafka_bootstrap, security, mechanism, username, password,
                           ca, cert, key)  # fmt: skip
    # Load the CA and the certificate now, so a bad file is named at start, not at first connect.
    try:
        ssl.create_default_context(cafile=str(ca) if ca else None)
    except (ssl.SSLError, OSError) as exc:
        raise KafkaSettingsError(f"HUB_KAFKA_CA_FILE: cannot be loaded: {exc}") from exc
    try:
        conn.ssl_context  # noqa: B018
    except (ssl.SSLError, OSError) as exc:
        raise KafkaSettingsError(
            f"HUB_KAFKA_CERT_FILE/HUB_KAFKA_KEY_FILE: cannot be loaded together: {exc}"
        ) from exc
    return conn


def librdkafka_config(kafka: Connectable) -> dict[str, str]:
    """The same connection as librdkafka settings (Quix Streams, confluent-kafka)."""
    conn = as_connection(kafka)
    conf = {"bootstrap.servers": conn.bootstrap, "security.protocol": conn.security.value}
    if conn.ca_file is not None:
        conf["ssl.ca.location"] = str(conn.ca_file)
    if conn.cert_file is not None and conn.key_file is not None:
        conf["ssl.certificate.location"] = str(conn.cert_file)
        conf["ssl.key.location"] = str(conn.key_file)
    if conn.security is KafkaSecurity.SASL_SSL:
        conf |= {"sasl.mechanism": conn.sasl_mechanism, "sasl.username": conn.username,
                 "sasl.password": conn.password}  # fmt: skip
    return conf


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Startable)


async def start_client(client: C) -> C:
    """``client`` (an aiokafka producer or consumer) started; when starting fails (the broker is
    unreachable, credentials are refused) it is stopped before the error goes on, since aiokafka
    leaves it open ("Unclosed AIOKafkaProducer" after the command's own error)."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    return client
