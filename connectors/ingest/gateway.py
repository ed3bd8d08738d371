"""`hub gateway`: authenticated HTTP ingest for systems that are web applications, not Kafka
clients. ``POST /v1/events/{source}`` with one JSON event or an array → validated with the
domain models → encoded with the catalog codec → produced to the source topic; answers 202
only after Kafka acknowledged every event. Errors are RFC 9457 problem details.

Hostile clients are expected (issue 11): bodies, events per request, JSON nesting, listed
errors and Idempotency-Key lengths are bounded before any work grows with them; each credential
has a token bucket of events per second; idempotency and event-id ownership are per credential
and durable in the central store (hub/store/ingest.py); every request is audited there; every
produced record carries its provenance headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import ValidationError

from connectors.ingest.credentials import Credential, Credentials, CredentialsError
from connectors.ingest.fhir import FhirConfig, FhirMapper
from hub.domain.errors import field_errors
from hub.domain.events import SOURCE_MODELS, SourceEvent
from hub.domain.units import UnknownUnit, UnresolvedSplit, admin_units
from hub.kafka.client import Connectable, options
from hub.metrics import source_label
from hub.store.ingest import AuditEntry, Conflict, Fresh, IngestLedger, KeyReused, Replay
from hub.tls import peer_subject, same_subject, subject_name
from hub.wire.codec import Codec

SOURCES = {source_label(topic.value): (topic, model) for topic, model in SOURCE_MODELS.items()}
PROBLEM = "application/problem+json"
FHIR_JSON = "application/fhir+json"
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one request may cost. Each bound is checked before the work it bounds."""

    max_body: int = 1_000_000
    max_events: int = 500
    # Listed field errors; the count says how many there were in all.
    max_errors: int = 50
    # A real event is 2–3 levels deep; 32 is generous and far below any parser's recursion.
    max_depth: int = 32
    max_idempotency_key: int = 200
    # Events per second per credential (0: unlimited); the bucket holds max(rate, max_events).
    rate: float = 0.0


def too_deep(data: Any, max_depth: int) -> bool:
    """True when ``data`` nests deeper than ``max_depth``; a walk without recursion. (orjson
    itself refuses nesting past 1024 with a JSONDecodeError, never a RecursionError.)"""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


class TokenBucket:
    """Events per second per credential; ``take`` says how long to wait when empty."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str, n: int, now: float | None = None) -> float:
        """0 when ``n`` tokens were taken, else the seconds until they would be there."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self.buckets.get(who, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= n:
            self.buckets[who] = (tokens - n, now)
            return 0.0
        self.buckets[who] = (tokens, now)
        return (n - tokens) / self.rate


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type=PROBLEM, headers=headers)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("hub_gateway_requests", "Ingest requests by source and status.",
                                ["source", "status"], registry=self.registry)  # fmt: skip
        self.events = Counter("hub_gateway_events", "Events produced by the gateway.",
                              ["source"], registry=self.registry)  # fmt: skip


@dataclass
class Audit:
    """What the audit row of one request says; filled in as the request is handled."""

    credential: str | None = None
    event_ids: list[str] = field(default_factory=list)
    body_sha256: str = ""
    idempotency_key: str | None = None


class Gateway:
    """The ingest connector: an aiohttp application around one Kafka producer and the ledger."""

    name = "gateway"

    def __init__(self, kafka: Connectable, credentials: Credentials, max_body: int,
                 fhir: FhirConfig | None = None, *, ledger: IngestLedger,
                 limits: Limits | None = None,
                 credentials_path: Path | None = None) -> None:  # fmt: skip
        self.kafka = kafka
        self.credentials = credentials
        self.credentials_path = credentials_path
        self.limits = limits or Limits(max_body=max_body)
        self.max_body = self.limits.max_body
        self.codec = Codec()
        self.units = admin_units()
        self.metrics = GatewayMetrics()
        self.fhir = FhirMapper(fhir or FhirConfig())
        self.ledger = ledger
        self.bucket = TokenBucket(self.limits.rate,
                                  max(self.limits.rate, float(self.limits.max_events)))  # fmt: skip
        self.producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()
        self.ledger_lock = asyncio.Lock()

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        producer = AIOKafkaProducer(**options(self.kafka), acks="all",
                                    enable_idempotence=True, request_timeout_ms=10_000)  # fmt: skip
        await producer.start()
        self.producer = producer

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    def ready(self) -> bool:
        return self.producer is not None

    def reload_credentials(self) -> None:
        """SIGHUP: re-read the credentials file (a revoked or expired key stops at once)."""
        if self.credentials_path is None:
            return
        try:
            self.credentials = Credentials.load(self.credentials_path)
        except CredentialsError as exc:  # keep the keys in force rather than none
            print(f"gateway: credentials not reloaded: {exc}", flush=True)

    async def ensure_producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            async with self.lock:
                if self.producer is None:
                    await self.start()
        assert self.producer is not None
        return self.producer

    async def in_ledger(self, call: Callable[[], T]) -> T:
        """A ledger call in a thread, one at a time (the store connection is not shared)."""
        async with self.ledger_lock:
            return await asyncio.to_thread(call)

    # ---- HTTP ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body + 1)
        app.router.add_post("/v1/events/{source}", self.ingest)
        app.router.add_post("/v1/fhir", self.ingest_fhir)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/openapi.json", self.openapi)
        app.on_cleanup.append(lambda _: self.stop())
        return app

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        try:
            await self.ensure_producer()
        except (KafkaError, OSError) as exc:
            return problem(503, "Kafka unreachable", str(exc))
        return web.json_response({"status": "ready"})

    async def metrics_page(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            content_type="text/plain", charset="utf-8")  # fmt: skip

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def ingest(self, request: web.Request) -> web.Response:
        source = request.match_info["source"]
        audit = Audit()
        response = await self._ingest(request, source, audit)
        self.metrics.requests.labels(source if source in SOURCES else "unknown",
                                     str(response.status)).inc()  # fmt: skip
        await self.record(request, response, audit)
        return response

    async def ingest_fhir(self, request: web.Request) -> web.Response:
        audit = Audit()
        response = await self._ingest_fhir(request, audit)
        self.metrics.requests.labels("fhir", str(response.status)).inc()
        await self.record(request, response, audit)
        return response

    async def record(self, request: web.Request, response: web.Response, audit: Audit) -> None:
        entry = AuditEntry(
            at=datetime.now(UTC), credential=audit.credential, remote=request.remote or "",
            method=request.method, path=request.path[:200], status=response.status,
            event_ids=audit.event_ids, body_sha256=audit.body_sha256,
            idempotency_key=audit.idempotency_key,
        )  # fmt: skip
        await self.in_ledger(lambda: self.ledger.audit(entry))

    def _credential(self, request: web.Request) -> Credential | None:
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        key = key or request.headers.get("X-API-Key", "")
        return self.credentials.find(key) if key else None

    @staticmethod
    def _certificate_problem(request: web.Request, credential: Credential) -> str | None:
        """Why the connection's client certificate does not carry ``credential`` (None: it
        does, or the key is not bound to a certificate)."""
        if credential.client_cert_subject is None:
            return None
        transport = request.transport
        subject = peer_subject(transport.get_extra_info("ssl_object") if transport else None)
        if subject is None:
            return f"{credential.name} is bound to a client certificate; none was presented"
        if not same_subject(subject, subject_name(credential.client_cert_subject)):
            return (f"{credential.name} is bound to another client certificate than "
                    f"{subject.rfc4514_string()}")  # fmt: skip
        return None

    async def _read_json(self, request: web.Request, audit: Audit) -> Any:
        """The parsed body, or a Response that refuses it (size, nesting, malformed)."""
        if (request.content_length or 0) > self.max_body:
            return problem(413, "Payload Too Large", f"the limit is {self.max_body} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return problem(413, "Payload Too Large", f"the limit is {self.max_body} bytes")
        audit.body_sha256 = hashlib.sha256(body).hexdigest()
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return problem(400, "Malformed JSON", str(exc)[:500])

    def _too_deep(self, data: Any) -> web.Response | None:
        if too_deep(data, self.limits.max_depth):
            return problem(400, "Malformed JSON",
                           f"JSON nested deeper than {self.limits.max_depth} levels")  # fmt: skip
        return None

    def _idempotency_key(self, request: web.Request, audit: Audit) -> str | web.Response | None:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not key or len(key) > self.limits.max_idempotency_key or not key.isprintable():
            limit = self.limits.max_idempotency_key
            return problem(400, "Bad Idempotency-Key", f"1 to {limit} printable characters")
        audit.idempotency_key = key
        return key

    async def _ingest(self, request: web.Request, source: str, audit: Audit) -> web.Response:
        credential = self._credential(request)
        if credential is None:
            return problem(401, "Unauthorized", "send a valid API key: Authorization: Bearer KEY")
        audit.credential = credential.name
        if (cert_problem := self._certificate_problem(request, credential)) is not None:
            return problem(403, "Forbidden", cert_problem)
        if source not in SOURCES:
            return problem(404, "Unknown source", f"{source!r}; one of {', '.join(SOURCES)}")
        if not credential.may_publish(source):
            return problem(403, "Forbidden", f"{credential.name} may not publish {source}")
        if request.content_type != "application/json":
            return problem(415, "Unsupported Media Type", "send Content-Type: application/json")
        idem = self._idempotency_key(request, audit)
        if isinstance(idem, web.Response):
            return idem
        data = await self._read_json(request, audit)
        if isinstance(data, web.Response):
            return data
        items = data if isinstance(data, list) else [data]
        if len(items) > self.limits.max_events:  # before any work per item
            return problem(413, "Too many events", f"{len(items)} events; at most "
                           f"{self.limits.max_events} per request")  # fmt: skip
        deep = self._too_deep(items)
        if deep is not None:
            return deep
        if not items or not all(isinstance(i, dict) for i in items):
            return problem(400, "Malformed request", "send an event object or a non-empty array")
        wait = self.bucket.take(credential.name, len(items))
        if wait:
            rate = self.limits.rate
            return problem(429, "Too Many Requests", f"{credential.name} is over its rate of "
                           f"{rate:g} events/s", retry_after=math.ceil(wait))  # fmt: skip
        topic, model = SOURCES[source]
        events, errors, count = self.validate(model, items)
        if count:
            return problem(422, "Validation failed", f"{count} problem(s)", errors=errors,
                           error_count=count)  # fmt: skip
        for event in events:
            province = self.province_2025(event)
            if not credential.may_publish_for(province):
                return problem(403, "Forbidden", f"{credential.name} may not publish events "
                               f"for province {province}")  # fmt: skip
        response = await self.produce_once(credential, idem, audit, {topic.value: events})
        if response.status == 202:
            self.metrics.events.labels(source).inc(len(events))
        return response

    async def _ingest_fhir(self, request: web.Request, audit: Audit) -> web.Response:
        """FHIR R4 resources (or a Bundle) → health events; errors are OperationOutcomes."""
        credential = self._credential(request)
        if credential is None:
            return outcome(401, "login", "send a valid API key: Authorization: Bearer KEY")
        audit.credential = credential.name
        if (cert_problem := self._certificate_problem(request, credential)) is not None:
            return outcome(403, "forbidden", cert_problem)
        if request.content_type not in ("application/fhir+json", "application/json"):
            return outcome(415, "not-supported", "send Content-Type: application/fhir+json")
        idem = self._idempotency_key(request, audit)
        if isinstance(idem, web.Response):
            return outcome(400, "invalid", "Idempotency-Key: 1 to "
                           f"{self.limits.max_idempotency_key} printable characters")  # fmt: skip
        data = await self._read_json(request, audit)
        if isinstance(data, web.Response) or too_deep(data, self.limits.max_depth):
            status = data.status if isinstance(data, web.Response) else 400
            code = "too-costly" if status == 413 else "structure"
            return outcome(status, code, "the body is too large, nested deeper than "
                           f"{self.limits.max_depth} levels, or not JSON")  # fmt: skip
        mapped = self.fhir.map(data)
        if mapped.issues:
            document = mapped.operation_outcome()
            document["issue"] = document["issue"][: self.limits.max_errors]
            return web.json_response(document, status=422, content_type=FHIR_JSON)
        if len(mapped.events) > self.limits.max_events:
            return outcome(413, "too-costly", f"{len(mapped.events)} events; at most "
                           f"{self.limits.max_events} per request")  # fmt: skip
        by_topic: dict[str, list[SourceEvent]] = {}
        for event in mapped.events:
            source = source_label(event.TOPIC.value)
            if not credential.may_publish(source):
                return outcome(403, "forbidden", f"{credential.name} may not publish {source}")
            if not credential.may_publish_for(event.province_code):
                return outcome(403, "forbidden", f"{credential.name} may not publish events "
                               f"for province {event.province_code}")  # fmt: skip
            facility = getattr(event, "facility_code", "")
            if not credential.may_publish_from(facility):
                return outcome(403, "forbidden", f"{credential.name} is not bound to facility "
                               f"{facility} (hub gateway add-key … --facility CODE)")  # fmt: skip
            by_topic.setdefault(event.TOPIC.value, []).append(event)
        wait = self.bucket.take(credential.name, len(mapped.events))
        if wait:
            return outcome(429, "throttled", f"{credential.name} is over its rate")
        response = await self.produce_once(credential, idem, audit, by_topic)
        if response.status != 202:
            return outcome(response.status, "conflict" if response.status in (409, 422)
                           else "transient", response.text or "")  # fmt: skip
        for topic, events in by_topic.items():
            self.metrics.events.labels(source_label(topic)).inc(len(events))
        return response

    def validate(
        self, model: type[SourceEvent], items: list[dict[str, Any]]
    ) -> tuple[list[SourceEvent], list[dict[str, Any]], int]:
        """The valid events, the first ``max_errors`` field errors and how many there were."""
        events: list[SourceEvent] = []
        errors: list[dict[str, Any]] = []
        count = 0
        for index, item in enumerate(items):
            try:
                events.append(model.model_validate(item))
            except ValidationError as exc:
                found = field_errors(exc)
                count += len(found)
                room = self.limits.max_errors - len(errors)
                errors.extend({"index": index, **e} for e in found[: max(0, room)])
        return events, errors, count

    def province_2025(self, event: SourceEvent) -> str:
        try:
            return self.units.to_2025(event.code_system, event.province_code,
                                      event.commune_code)[0]  # fmt: skip
        except (UnknownUnit, UnresolvedSplit):
            return event.province_code

    async def produce_once(self, credential: Credential, idem: str | None, audit: Audit,
                           by_topic: dict[str, list[SourceEvent]]) -> web.Response:  # fmt: skip
        """Produce what this request may produce, exactly once per credential and event id."""
        ids = [str(e.event_id) for events in by_topic.values() for e in events]
        now = datetime.now(UTC)
        sha = audit.body_sha256
        verdict = await self.in_ledger(
            lambda: self.ledger.reserve(credential.name, idem, sha, ids, now)
        )
        if isinstance(verdict, Replay):
            audit.event_ids = verdict.event_ids
            return web.json_response({"accepted": verdict.event_ids, "replayed": True},
                                     status=202)  # fmt: skip
        if isinstance(verdict, KeyReused):
            return problem(422, "Idempotency-Key reused", "this Idempotency-Key was used with "
                           "a different body", reason="idempotency_key_reused")  # fmt: skip
        if isinstance(verdict, Conflict):
            return problem(409, "Event id conflict", f"{len(verdict.event_ids)} event id(s) were "
                           "produced by another credential", reason="event_id_conflict",
                           event_ids=verdict.event_ids[: self.limits.max_errors])  # fmt: skip
        assert isinstance(verdict, Fresh)
        wanted = set(verdict.to_produce)
        headers = [("hub-credential", credential.name.encode()),
                   ("hub-received-at", now.isoformat().encode()),
                   ("hub-body-sha256", sha.encode())]  # fmt: skip
        try:
            await self.produce(
                {t: [e for e in evs if str(e.event_id) in wanted] for t, evs in by_topic.items()},
                headers,
            )
        except (KafkaError, OSError) as exc:
            await self.in_ledger(lambda: self.ledger.release(credential.name, verdict.to_produce))
            return problem(503, "Kafka unreachable", f"nothing was accepted: {exc}")
        await self.in_ledger(lambda: self.ledger.produced(credential.name, idem, sha, ids, now))
        audit.event_ids = ids
        return web.json_response({"accepted": ids}, status=202)

    async def produce(self, by_topic: dict[str, list[SourceEvent]],
                      headers: list[tuple[str, bytes]]) -> None:  # fmt: skip
        """Produce every event; return once Kafka acknowledged all of them."""
        producer = await self.ensure_producer()
        futures: list[Awaitable[Any]] = []
        for topic, events in by_topic.items():
            for event in events:
                value = self.codec.encode(event.SCHEMA, event.to_avro())
                futures.append(await producer.send(topic, key=event.subject_id().encode(),
                                                   value=value, headers=headers))  # fmt: skip
        await asyncio.gather(*futures)


def outcome(status: int, code: str, diagnostics: str) -> web.Response:
    """A FHIR OperationOutcome with one error issue."""
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}  # fmt: skip
    return web.json_response(body, status=status, content_type=FHIR_JSON)


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1, with request schemas generated from the same pydantic models."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for source, (topic, model) in SOURCES.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        paths[f"/v1/events/{source}"] = {"post": {
            "summary": f"Publish {model.__name__} events to {topic.value}",
            "security": [{"apiKey": []}],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [ref, {"type": "array", "items": ref}]}}}},
            "responses": {str(code): {"description": text} for code, text in (
                (202, "accepted: every event acknowledged by Kafka (a replayed Idempotency-Key "
                      "answers the first answer's ids and produces nothing)"),
                (400, "malformed JSON, nesting deeper than 32, or a bad Idempotency-Key"),
                (401, "no, unknown or expired API key"),
                (403, "source or province outside the scope"),
                (409, "event_id_conflict: an event id another credential produced"),
                (413, "body over the limit, or more events than HUB_GATEWAY_MAX_EVENTS"),
                (415, "not application/json"),
                (422, "validation failed (at most 50 field errors listed, error_count says how "
                      "many), or idempotency_key_reused with a different body"),
                (429, "over the key's events/s; Retry-After says when to retry"),
                (503, "Kafka unreachable; nothing accepted"))},
        }}  # fmt: skip
    paths["/v1/fhir"] = {"post": {
        "summary": "Publish FHIR R4 Encounter, ServiceRequest, Appointment, Observation or "
                   "DiagnosticReport resources (singly or in a Bundle) as health events",
        "security": [{"apiKey": []}],
        "requestBody": {"required": True, "content": {"application/fhir+json": {"schema": {
            "type": "object", "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string"}}}}}},
        "responses": {str(code): {"description": text} for code, text in (
            (202, "accepted: every mapped event acknowledged by Kafka"),
            (400, "malformed JSON (OperationOutcome)"), (401, "no or unknown API key"),
            (403, "source, province or facility outside the key's scope"),
            (409, "an event id another credential produced"), (413, "body over the limit"),
            (429, "over the key's events/s"),
            (415, "not application/fhir+json"),
            (422, "unsupported or incomplete resources: OperationOutcome says why; nothing "
                  "accepted"),
            (503, "Kafka unreachable; nothing accepted"))},
    }}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lienthong Hub ingest gateway", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer"}}},
    }  # fmt: skip
