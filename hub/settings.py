"""Every setting of the hub, read from ``HUB_*`` environment variables in this one module.

Components receive a :class:`Settings` object; nothing else reads the environment.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IdentityMode(StrEnum):
    """What the worker does with an event whose subject disagrees with the population register."""

    FLAG = "flag"
    DEAD_LETTER = "dead_letter"


class KafkaSecurity(StrEnum):
    """How Kafka clients connect (docs/SECURITY.md)."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_SSL = "SASL_SSL"


class EventLoop(StrEnum):
    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


class Settings(BaseSettings):
    """Typed settings; every field is ``HUB_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    home: Path = Field(
        default=Path(".hub"), description="Working directory for broker data, store and state."
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers (host:port[,host:port])."
    )
    kafka_security_protocol: KafkaSecurity = Field(
        default=KafkaSecurity.PLAINTEXT,
        description="PLAINTEXT (the embedded local demo only), SSL, or SASL_SSL (SCRAM over "
        "TLS, the production setting). `hub kafka start` starts a SASL_SSL broker when this "
        "is SASL_SSL.",
    )
    kafka_sasl_mechanism: str = Field(
        default="SCRAM-SHA-512", description="SASL mechanism: SCRAM-SHA-512 or SCRAM-SHA-256."
    )
    kafka_username: str = Field(default="", description="SASL principal of this client.")
    kafka_password_file: Path | None = Field(
        default=None, description="File holding the SASL password of HUB_KAFKA_USERNAME."
    )
    kafka_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle the broker's certificate is verified against "
        "(default: the system's trust store).",
    )
    kafka_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for mutual TLS (with the key file)."
    )
    kafka_key_file: Path | None = Field(
        default=None, description="PEM private key of HUB_KAFKA_CERT_FILE."
    )
    kafka_libs: Path | None = Field(
        default=None,
        description="Directory of Kafka's jars for `hub kafka users` (default: resolved from "
        "Maven Central into deploy/kafka/lib).",
    )
    kafka_controller_port: int = Field(
        default=9093,
        ge=1,
        le=65535,
        description="KRaft controller port of the local development broker.",
    )
    kafka_heap: str = Field(
        default="-Xms512m -Xmx1g",
        description="JVM heap of the local broker; sized for a 2-core / 24 GB machine.",
    )
    kafka_start_timeout_s: float = Field(
        default=90.0, description="How long `hub kafka start` waits for the broker to answer."
    )
    partitions: int = Field(
        default=12,
        ge=1,
        description="Partitions of every hub topic: up to this many workers share the work "
        "(12 spreads evenly over 1, 2, 3, 4, 6 or 12; docs/OPERATIONS.md, 'Partitions').",
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replicas of every hub topic (1 for the local broker)."
    )
    store_url: str = Field(
        default="",
        description="Central store: empty means SQLite at <home>/store.sqlite3; "
        "postgresql://user:pass@host/db for PostgreSQL.",
    )
    store_batch_size: int = Field(
        default=500, ge=1, description="Events per batch: processed, produced and stored together."
    )
    metrics_port: int = Field(default=9108, ge=1, le=65535,
                              description="Port of the worker's /metrics endpoint.")  # fmt: skip
    metrics_bind: str = Field(default="127.0.0.1", description="Address /metrics listens on.")
    kpi_port: int = Field(default=9109, ge=1, le=65535,
                          description="Port of `hub kpi serve` (hub-wide KPIs).")  # fmt: skip
    register_cache_size: int = Field(
        default=20_000,
        ge=0,
        description="Register entries a worker keeps between batches (the register itself is "
        "in the central store).",
    )
    register_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a cached register entry is trusted: another worker's register "
        "update is seen within this time.",
    )
    register_max_age_days: float = Field(
        default=365.0,
        gt=0,
        description="A subject's population-register entry older than this is not 'alive'.",
    )
    freshness_s: float = Field(
        default=300.0, gt=0, description="Occurred→ingested delay above which data is not 'alive'."
    )
    commit_every: int = Field(
        default=1000,
        ge=1,
        description="Commit consumer offsets at least every N messages (in the background; "
        "faust also commits every second).",
    )
    fetch_top_up_ms: float = Field(
        default=20.0,
        ge=0,
        description="After a batch that took at least this long, wait up to this long for the "
        "fetch that taking the next one starts, and handle both as one batch: the Kafka client "
        "fetches a partition again only once its records are taken, so the next batch was as "
        "old as this one (0: never wait).",
    )
    fetch_partition_bytes: int = Field(
        default=1024**2,
        ge=1024,
        description="Most bytes a fetch brings of one partition (the Kafka client's "
        "max_partition_fetch_bytes). The client holds up to this much of every partition it "
        "reads before the worker takes it, so over a backlog a worker's memory grows with it "
        "times the partitions it reads; a record batch larger than this still comes whole.",
    )
    report_interval_s: float = Field(
        default=2.0, gt=0, description="Seconds between case/KPI/lag metric refreshes."
    )
    case_answer_wait_s: float = Field(
        default=86_400.0,
        gt=0,
        description="How long agency answers for a case no task opened wait for the task; then "
        "they are dead-lettered (ack_without_task) and the case is given up on.",
    )
    cases_waiting_max: int = Field(
        default=100_000,
        ge=0,
        description="Cases a worker lets wait for their task (answers first); beyond it the "
        "oldest are given up on early (bounds a worker's memory under answers to made-up cases).",
    )
    event_loop: EventLoop = Field(
        default=EventLoop.UVLOOP,
        description="Event loop of the worker: uvloop (faster) or asyncio (the standard one).",
    )
    faust_metrics: bool = Field(
        default=False,
        description="Also export faust's own per-event sensor metrics (faust_*) on /metrics; "
        "off by default: they cost about 5% of a busy worker's time (docs/BENCHMARKS.md).",
    )
    population_topic: str = Field(
        default="ref.population.v1",
        description="Compacted feed of the population register; workers apply it to the "
        "central store's citizens table and look people up there.",
    )
    app_id: str = Field(default="lienthong-hub", description="Kafka consumer group / faust app id.")
    identity_mode: IdentityMode = Field(
        default=IdentityMode.FLAG,
        description="flag: mark identity mismatches in quality flags; dead_letter: reject them.",
    )
    dlq_max_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Stop the worker when the dead-letter share of the last window exceeds this.",
    )
    dlq_window: int = Field(
        default=1000, ge=10, description="Events in the window the dead-letter ratio is taken over."
    )
    gateway_port: int = Field(default=8080, ge=1, le=65535,
                              description="Port of the HTTP ingest gateway.")  # fmt: skip
    gateway_bind: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    gateway_tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) the gateway serves HTTPS with."
    )
    gateway_tls_key: Path | None = Field(
        default=None, description="PEM private key of HUB_GATEWAY_TLS_CERT."
    )
    gateway_client_ca: Path | None = Field(
        default=None,
        description="PEM CA of client certificates: set, every client must present one it "
        "issued (mutual TLS), and keys bound to a subject need that certificate.",
    )
    gateway_credentials: Path | None = Field(
        default=None,
        description="JSON file of gateway API keys (hashed) and their scopes; "
        "default <home>/gateway-keys.json.",
    )
    gateway_max_body: int = Field(default=1_000_000, description="Largest request body, bytes.")
    gateway_max_events: int = Field(
        default=500, ge=1, description="Most events in one gateway request (more: 413)."
    )
    gateway_rate: float = Field(
        default=2000.0,
        ge=0,
        description="Events per second per API key at the gateway (0: unlimited; over: 429).",
    )
    gateway_idempotency_days: float = Field(
        default=7.0,
        gt=0,
        description="How long the gateway remembers Idempotency-Keys and which key produced "
        "which event id.",
    )
    fhir_config: Path | None = Field(
        default=None,
        description="JSON FHIR adapter config (identifier systems, facility register); "
        "default <home>/fhir.json.",
    )
    delivery_endpoints: Path | None = Field(
        default=None,
        description="JSON file of agency endpoints (url, key_id, secret, concurrency); "
        "default <home>/agency-endpoints.json.",
    )
    delivery_ca_file: Path | None = Field(
        default=None,
        description="PEM CA agency endpoints are verified against (default: the system's).",
    )
    delivery_client_cert: Path | None = Field(
        default=None, description="PEM client certificate `hub deliver` presents to agencies."
    )
    delivery_client_key: Path | None = Field(
        default=None, description="PEM private key of HUB_DELIVERY_CLIENT_CERT."
    )
    delivery_attempts: int = Field(default=8, ge=1, description="HTTP attempts per agency task.")
    delivery_backoff_s: float = Field(
        default=0.5, gt=0, description="First retry wait (doubles per attempt, full jitter)."
    )
    delivery_backoff_max_s: float = Field(default=60.0, gt=0, description="Longest retry wait.")
    delivery_timeout_s: float = Field(default=10.0, gt=0, description="Timeout per HTTP attempt.")
    delivery_metrics_port: int = Field(
        default=9103,
        ge=0,
        le=65535,
        description="Port of the delivery worker's /metrics (0: none).",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {server!r}")
        return value

    @cached_property
    def kafka_host_port(self) -> tuple[str, int]:
        """The first bootstrap server as (host, port): where the local broker listens."""
        host, _, port = self.kafka_bootstrap.split(",")[0].strip().rpartition(":")
        return host, int(port)

    @property
    def resolved_delivery_endpoints(self) -> Path:
        return self.delivery_endpoints or self.home / "agency-endpoints.json"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def resolved_store_url(self) -> str:
        """The store URL with the embedded SQLite default filled in."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.home / 'store.sqlite3').resolve()}"


def load_settings() -> Settings:
    """Read the settings from the environment (the only place that does)."""
    return Settings()
