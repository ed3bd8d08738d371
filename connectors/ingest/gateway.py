"""`hub gateway`: authenticated HTTP ingest for systems that are web applications, not Kafka
clients. ``POST /v1/events/{source}`` with one JSON event or an array → validated with the
domain models → encoded with the catalog codec → produced to the source topic; answers 202
only after Kafka acknowledged every event. Errors are RFC 9457 problem details.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import ValidationError

from connectors.ingest.credentials import Credential, Credentials
from connectors.ingest.fhir import FhirConfig, FhirMapper
from hub.domain.events import SOURCE_MODELS, SourceEvent
from hub.domain.units import UnknownUnit, UnresolvedSplit, admin_units
from hub.metrics import source_label
from hub.wire.codec import Codec

SOURCES = {source_label(topic.value): (topic, model) for topic, model in SOURCE_MODELS.items()}
PROBLEM = "application/problem+json"
FHIR_JSON = "application/fhir+json"
SEEN_CAPACITY = 100_000


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type=PROBLEM)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("hub_gateway_requests", "Ingest requests by source and status.",
                                ["source", "status"], registry=self.registry)  # fmt: skip
        self.events = Counter("hub_gateway_events", "Events produced by the gateway.",
                              ["source"], registry=self.registry)  # fmt: skip


class Gateway:
    """The ingest connector: an aiohttp application around one Kafka producer."""

    name = "gateway"

    def __init__(self, bootstrap: str, credentials: Credentials, max_body: int,
                 fhir: FhirConfig | None = None) -> None:  # fmt: skip
        self.bootstrap = bootstrap
        self.credentials = credentials
        self.max_body = max_body
        self.codec = Codec()
        self.units = admin_units()
        self.metrics = GatewayMetrics()
        self.fhir = FhirMapper(fhir or FhirConfig())
        self.producer: AIOKafkaProducer | None = None
        self.produced: OrderedDict[str, None] = OrderedDict()  # recent event ids / keys
        self.lock = asyncio.Lock()

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True, request_timeout_ms=10_000)  # fmt: skip
        await producer.start()
        self.producer = producer

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    def ready(self) -> bool:
        return self.producer is not None

    async def ensure_producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            async with self.lock:
                if self.producer is None:
                    await self.start()
        assert self.producer is not None
        return self.producer

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
        response = await self._ingest(request, source)
        self.metrics.requests.labels(source if source in SOURCES else "unknown",
                                     str(response.status)).inc()  # fmt: skip
        return response

    async def ingest_fhir(self, request: web.Request) -> web.Response:
        response = await self._ingest_fhir(request)
        self.metrics.requests.labels("fhir", str(response.status)).inc()
        return response

    async def _ingest_fhir(self, request: web.Request) -> web.Response:
        """FHIR R4 resources (or a Bundle) → health events; errors are OperationOutcomes."""
        credential = self._credential(request)
        if credential is None:
            return outcome(401, "login", "send a valid API key: Authorization: Bearer KEY")
        if request.content_type not in ("application/fhir+json", "application/json"):
            return outcome(415, "not-supported", "send Content-Type: application/fhir+json")
        if (request.content_length or 0) > self.max_body:
            return outcome(413, "too-costly", f"the limit is {self.max_body} bytes")
        try:
            data = json.loads(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return outcome(413, "too-costly", f"the limit is {self.max_body} bytes")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return outcome(400, "structure", f"malformed JSON: {exc}")
        mapped = self.fhir.map(data)
        if mapped.issues:
            return web.json_response(mapped.operation_outcome(), status=422,
                                     content_type=FHIR_JSON)  # fmt: skip
        by_topic: dict[str, list[SourceEvent]] = {}
        for event in mapped.events:
            source = source_label(event.TOPIC.value)
            if not credential.may_publish(source):
                return outcome(403, "forbidden", f"{credential.name} may not publish {source}")
            if not credential.may_publish_for(event.province_code):
                return outcome(403, "forbidden", f"{credential.name} may not publish events "
                               f"for province {event.province_code}")  # fmt: skip
            by_topic.setdefault(event.TOPIC.value, []).append(event)
        ids: list[str] = []
        try:
            for topic, events in by_topic.items():
                ids += await self.produce(topic, events, None)
        except (KafkaError, OSError) as exc:
            return outcome(503, "transient", f"Kafka unreachable: {exc}")
        for topic, events in by_topic.items():
            self.metrics.events.labels(source_label(topic)).inc(len(events))
        return web.json_response({"accepted": ids}, status=202)

    def _credential(self, request: web.Request) -> Credential | None:
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        key = key or request.headers.get("X-API-Key", "")
        return self.credentials.find(key) if key else None

    async def _ingest(self, request: web.Request, source: str) -> web.Response:
        credential = self._credential(request)
        if credential is None:
            return problem(401, "Unauthorized", "send a valid API key: Authorization: Bearer KEY")
        if source not in SOURCES:
            return problem(404, "Unknown source", f"{source!r}; one of {', '.join(SOURCES)}")
        if not credential.may_publish(source):
            return problem(403, "Forbidden", f"{credential.name} may not publish {source}")
        if request.content_type != "application/json":
            return problem(415, "Unsupported Media Type", "send Content-Type: application/json")
        if (request.content_length or 0) > self.max_body:
            return problem(413, "Payload Too Large", f"the limit is {self.max_body} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return problem(413, "Payload Too Large", f"the limit is {self.max_body} bytes")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return problem(400, "Malformed JSON", str(exc))
        items = data if isinstance(data, list) else [data]
        if not items or not all(isinstance(i, dict) for i in items):
            return problem(400, "Malformed request", "send an event object or a non-empty array")
        topic, model = SOURCES[source]
        events, errors = self.validate(model, items)
        if errors:
            return problem(422, "Validation failed", f"{len(errors)} problem(s)", errors=errors)
        for event in events:
            province = self.province_2025(event)
            if not credential.may_publish_for(province):
                return problem(403, "Forbidden", f"{credential.name} may not publish events "
                               f"for province {province}")  # fmt: skip
        idem = request.headers.get("Idempotency-Key")
        try:
            ids = await self.produce(topic.value, events, idem)
        except (KafkaError, OSError) as exc:
            return problem(503, "Kafka unreachable", f"nothing was accepted: {exc}")
        self.metrics.events.labels(source).inc(len(events))
        return web.json_response({"accepted": ids}, status=202)

    def validate(
        self, model: type[SourceEvent], items: list[dict[str, Any]]
    ) -> tuple[list[SourceEvent], list[dict[str, Any]]]:
        events: list[SourceEvent] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                events.append(model.model_validate(item))
            except ValidationError as exc:
                for e in exc.errors(include_url=False):
                    where = ".".join(str(p) for p in e["loc"]) or "record"
                    errors.append(
                        {"index": index, "field": where, "reason": e["type"], "message": e["msg"]}
                    )
        return events, errors

    def province_2025(self, event: SourceEvent) -> str:
        try:
            return self.units.to_2025(event.code_system, event.province_code,
                                      event.commune_code)[0]  # fmt: skip
        except (UnknownUnit, UnresolvedSplit):
            return event.province_code

    async def produce(self, topic: str, events: list[SourceEvent], idem: str | None) -> list[str]:
        """Produce the events not produced before; wait until Kafka acknowledged all."""
        producer = await self.ensure_producer()
        ids = [str(e.event_id) for e in events]
        keys = [f"{idem}:{i}" if idem else ids[i] for i in range(len(events))]
        futures = []
        for key, event in zip(keys, events, strict=True):
            if key in self.produced:
                continue  # a retry: already in Kafka
            value = self.codec.encode(event.SCHEMA, event.to_avro())
            futures.append((key, await producer.send(topic, key=event.subject_id().encode(),
                                                     value=value)))  # fmt: skip
        await asyncio.gather(*(f for _, f in futures))
        for key, _ in futures:
            self.produced[key] = None
            if len(self.produced) > SEEN_CAPACITY:
                self.produced.popitem(last=False)
        return ids


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
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [ref, {"type": "array", "items": ref}]}}}},
            "responses": {str(code): {"description": text} for code, text in (
                (202, "accepted: every event acknowledged by Kafka"), (400, "malformed JSON"),
                (401, "no or unknown API key"), (403, "source or province outside the scope"),
                (413, "body over the limit"), (415, "not application/json"),
                (422, "validation failed; each failing field named"),
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
            (403, "source or province outside the scope"), (413, "body over the limit"),
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
