"""`hub deliver`: agency tasks from the ``agency.*`` topics to each agency's HTTPS endpoint.

Every task is POSTed as JSON, signed as a Standard Webhook (connectors/delivery/signing.py:
``webhook-id`` is the task id, which agencies deduplicate on; ``Idempotency-Key`` repeats it).
Failures that may pass (timeouts, refused connections, 5xx, 408, 425, 429) are retried with
exponential backoff and full jitter up to a budget; a definite refusal (other 4xx), a redirect
(never followed) or an exhausted budget sends the task to ``dlq.<agency topic>`` with the reason.
A 2xx becomes an acknowledgement on the agency's own topic ``agency.ack.<agency>.v1``, which
closes the task in the worker's interconnection case. Offsets are committed only after every
task of a batch was acknowledged or dead-lettered: nothing is dropped.

Each agency has its own consumer group and concurrency limit, so a slow agency delays only its
own tasks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from connectors.delivery.signing import secret_problem, sign
from hub.domain.records import (
    AckOutcome,
    Agency,
    AgencyAcknowledgement,
    AgencyTask,
    DeadLetter,
    Stage,
)
from hub.domain.topics import ack_topic_of, dead_letter_topic
from hub.domain.workflows import topics_of
from hub.kafka.client import Connectable, options
from hub.stream.dead_letters import dead_letter
from hub.stream.pipeline import Rejected
from hub.types import Incoming
from hub.wire.codec import Codec, CodecError

log = logging.getLogger("hub.delivery")

RETRYABLE_STATUS = frozenset({408, 425, 429})


class EndpointsError(ValueError):
    """The agency endpoints file is missing or wrong; the message says what to fix."""


LOOPBACK_HOSTS = frozenset({"localhost", "::1", "[::1]"})


def url_problem(url: str) -> str | None:
    """Tasks carry personal data: HTTPS only, plain HTTP for this machine's loopback only."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    host = parts.hostname or ""
    if parts.scheme == "http" and (host in LOOPBACK_HOSTS or host.startswith("127.")):
        return None
    return f"{url!r}: agency endpoints are https:// (http:// only for loopback addresses)"


class Endpoint(BaseModel):
    """Where and how one agency receives its tasks."""

    # An error must not print what it refused: the value may be a signing secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str
    # Which secret is in force, for the operators' rotation records (not sent to the agency).
    key_id: str = Field(default="", max_length=100)
    secret: SecretStr
    # During a rotation: deliveries carry a signature with each, so the agency may switch over.
    previous_secret: SecretStr | None = None
    concurrency: int = Field(default=4, ge=1, le=256)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("secret", "previous_secret")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else secret_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    def signing_secrets(self) -> list[str]:
        found = [self.secret, self.previous_secret]
        return [s.get_secret_value() for s in found if s is not None]


class Endpoints(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)  # the file holds signing secrets

    agencies: dict[Agency, Endpoint]

    @classmethod
    def load(cls, path: Path) -> Endpoints:
        if not path.exists():
            raise EndpointsError(f"no agency endpoints file at {path} (see README, "
                                 "'Connecting an agency system')")  # fmt: skip
        try:
            endpoints = cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise EndpointsError(f"{path}: {exc}") from exc
        if not endpoints.agencies:
            raise EndpointsError(f"{path}: no agencies configured")
        idle = [a.value for a in endpoints.agencies if not topics_of(a)]
        if idle:
            raise EndpointsError(f"{path}: no workflow routes tasks to {', '.join(idle)} since "
                                 "the 2025 reorganisation (docs/WORKFLOWS.md)")  # fmt: skip
        if path.stat().st_mode & 0o077:
            raise EndpointsError(f"{path} holds signing secrets and is readable by others: "
                                 f"chmod 600 {path}")  # fmt: skip
        return endpoints


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 60.0
    timeout_s: float = 10.0


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"
    REDIRECTED = "redirected"


def classify(status: int | None) -> Verdict:
    """What an HTTP answer means for a delivery (``None``: no answer: timeout, refused...).

    A redirect is never followed (a 307 would re-send the signed task, personal data included,
    to whatever host it names; a 302 would turn it into a bodiless GET) and never counts as an
    acknowledgement: it is dead-lettered for an operator to look at.
    """
    if status is None or status >= 500 or status in RETRYABLE_STATUS:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if 300 <= status < 400:
        return Verdict.REDIRECTED
    return Verdict.REFUSED


def backoff(attempt: int, policy: RetryPolicy, rng: Callable[[], float]) -> float:
    """Full jitter: a uniform wait in [0, min(cap, base·2^attempt)) before the next attempt."""
    return rng() * min(policy.cap_s, policy.base_s * 2.0**attempt)


def task_body(task: AgencyTask) -> bytes:
    """The JSON an agency receives: the task, with only the fields its workflow step declares."""
    return json.dumps(task.model_dump(mode="json"), ensure_ascii=False, sort_keys=True).encode()


@dataclass(frozen=True)
class Attempt:
    status: int | None
    detail: str
    reference: str | None = None


class DeliveryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter("hub_deliveries", "Agency tasks by final outcome.",
                                  ["agency", "outcome"], registry=self.registry)  # fmt: skip
        self.attempts = Counter("hub_delivery_attempts", "HTTP attempts by agency and verdict.",
                                ["agency", "verdict"], registry=self.registry)  # fmt: skip
        self.seconds = Histogram("hub_delivery_seconds", "Time from first attempt to outcome.",
                                 ["agency"], registry=self.registry)  # fmt: skip


class DeliveryWorker:
    """The delivery connector: one consumer per agency, one producer, one HTTP client."""

    name = "delivery"

    def __init__(self, kafka: Connectable, group: str, endpoints: Endpoints, policy: RetryPolicy,
                 worker: str, seed: int | None = None,
                 tls: ssl.SSLContext | None = None) -> None:  # fmt: skip
        self.kafka = kafka
        self.group = group
        self.endpoints = endpoints.agencies
        self.policy = policy
        self.worker = worker
        self.codec = Codec()
        self.metrics = DeliveryMetrics()
        self.rng = random.Random(seed).random
        self.producer: AIOKafkaProducer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.tls = tls  # agencies' CA and the hub's client certificate (mutual TLS), if any
        self._running = 0

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(**options(self.kafka), linger_ms=5)
        await self.producer.start()
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout_s)
        connector = aiohttp.TCPConnector(ssl=self.tls) if self.tls is not None else None
        self.session = aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    def ready(self) -> bool:
        return self.producer is not None and self._running == len(self.endpoints)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set (the current batch finishes first)."""
        await asyncio.gather(*(self._agency_loop(a, e, stop) for a, e in self.endpoints.items()))

    async def _agency_loop(self, agency: Agency, endpoint: Endpoint, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *topics_of(agency), **options(self.kafka),
            group_id=f"{self.group}-{agency.value.lower()}", enable_auto_commit=False,
            auto_offset_reset="earliest",
        )  # fmt: skip
        await consumer.start()
        self._running += 1
        limit = asyncio.Semaphore(endpoint.concurrency)
        log.info("delivering %s tasks (%s) to %s", agency.value, ", ".join(topics_of(agency)),
                 endpoint.url)  # fmt: skip
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=endpoint.concurrency * 8)
                records = [r for recs in batch.values() for r in recs]
                if not records:
                    continue

                async def one(record: Any) -> None:
                    async with limit:
                        await self.deliver(agency, endpoint, record)

                await asyncio.gather(*(one(r) for r in records))
                await consumer.commit()
        finally:
            self._running -= 1
            await consumer.stop()

    async def deliver(self, agency: Agency, endpoint: Endpoint, record: Any) -> None:
        """One task to its agency: acknowledged, or dead-lettered with the reason."""
        msg = Incoming.of(record)
        try:
            task = AgencyTask.model_validate(self.codec.decode(record.value or b"")[1])
        except (CodecError, ValidationError) as exc:
            await self._dead_letter(msg, agency, Rejected(Stage.DECODE, "invalid_agency_task",
                                                          str(exc)))  # fmt: skip
            return
        started = time.monotonic()
        body = task_body(task)
        last = Attempt(None, "not attempted")
        for attempt in range(self.policy.attempts):
            if attempt:
                await asyncio.sleep(backoff(attempt - 1, self.policy, self.rng))
            last = await self._post(endpoint, task, body)
            verdict = classify(last.status)
            self.metrics.attempts.labels(agency.value, verdict.value).inc()
            if verdict is Verdict.DELIVERED:
                await self._acknowledge(task, last.reference)
                self.metrics.deliveries.labels(agency.value, "delivered").inc()
                self.metrics.seconds.labels(agency.value).observe(time.monotonic() - started)
                return
            if verdict in (Verdict.REFUSED, Verdict.REDIRECTED):
                reason = f"delivery_{verdict.value}"
                refused = Rejected(Stage.DELIVER, reason, f"{endpoint.url}: {last.detail}")
                await self._dead_letter(msg, agency, refused)
                return
            log.info("delivery of %s to %s failed (attempt %d/%d): %s", task.task_id,
                     agency.value, attempt + 1, self.policy.attempts, last.detail)  # fmt: skip
        await self._dead_letter(msg, agency, Rejected(
            Stage.DELIVER, "delivery_failed",
            f"{endpoint.url}: {last.detail} after {self.policy.attempts} attempts"))  # fmt: skip

    async def _post(self, endpoint: Endpoint, task: AgencyTask, body: bytes) -> Attempt:
        assert self.session is not None, "start() first"
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": task.task_id,
            **sign(endpoint.signing_secrets(), task.task_id, body, int(time.time())),
        }
        try:
            async with self.session.post(endpoint.url, data=body, headers=headers,
                                         allow_redirects=False) as resp:  # fmt: skip
                text = await resp.text(errors="replace")
                reference = None
                if 200 <= resp.status < 300 and resp.content_type == "application/json":
                    answer = json.loads(text or "{}")
                    if isinstance(answer, dict) and answer.get("reference") is not None:
                        reference = str(answer["reference"])
                where = (
                    f" to {resp.headers.get('Location', '?')}" if 300 <= resp.status < 400 else ""
                )
                return Attempt(resp.status, f"HTTP {resp.status}{where} {text[:200]}", reference)
        except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}")

    async def _acknowledge(self, task: AgencyTask, reference: str | None) -> None:
        assert self.producer is not None, "start() first"
        ack = AgencyAcknowledgement(case_id=task.case_id, task_id=task.task_id, agency=task.agency,
                                    outcome=AckOutcome.DONE, acknowledged_at=datetime.now(UTC),
                                    reference=reference)  # fmt: skip
        await self.producer.send_and_wait(
            ack_topic_of(task.agency.value),
            key=str(task.case_id).encode(),
            value=self.codec.encode(AgencyAcknowledgement.SCHEMA, ack.to_avro()),
        )

    async def _dead_letter(self, msg: Incoming, agency: Agency, rejected: Rejected) -> None:
        assert self.producer is not None, "start() first"
        letter = dead_letter(msg, rejected, datetime.now(UTC), self.worker)
        log.warning("dead letter %s/%s@%s: %s %s", msg.topic, msg.partition, msg.offset,
                    rejected.reason, rejected.detail[:200])  # fmt: skip
        await self.producer.send_and_wait(
            dead_letter_topic(msg.topic), key=msg.key,
            value=self.codec.encode(DeadLetter.SCHEMA, letter.to_avro()),
        )  # fmt: skip
        self.metrics.deliveries.labels(agency.value, "dead_lettered").inc()
