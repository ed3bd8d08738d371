"""`hub import FILE --source S`: batch import of digitised records (CSV with a header, or JSON
Lines), streamed in batches: each row is validated with the domain models; valid rows are
encoded and produced to the source topic; rejected rows go, with their errors, to
``FILE.rejects.jsonl``. After each batch Kafka acknowledged, a checkpoint
(``FILE.import-state.json``) records the last line done, so an interrupted import resumes after
it. Memory stays bounded by one batch whatever the file size. Every record carries its
provenance in headers: ``hub-import-file``, ``hub-import-sha256`` (of the whole file) and
``hub-import-line`` (the record's number in the file, as the rejects file and the checkpoint
count: JSON Lines by line, CSV by data row after the header). The rejects file is created
mode 0600 (it holds personal data).

A crash between Kafka's acknowledgement of a batch and the checkpoint write can re-send that
one batch on resume; the hub stores an event id once, so nothing is stored twice.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from connectors.ingest.gateway import SOURCES
from hub.domain.enums import RecordOrigin
from hub.domain.errors import field_errors
from hub.domain.events import SourceEvent
from hub.kafka.client import Connectable, options, start_client
from hub.wire.codec import Codec

BATCH = 1000


class ImportFailed(ValueError):
    """The file or the request cannot be imported (a clear one-line reason)."""


@dataclass
class ImportState:
    line: int = 0  # last line (1-based, header excluded for CSV) durably handled
    produced: int = 0
    rejected: int = 0
    size: int = 0  # the file's size when the import started: resuming another file is refused

    @classmethod
    def load(cls, path: Path) -> ImportState | None:
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


def rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every data row; CSV empty cells become missing values."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), 1):
                yield n, {k: v for k, v in row.items() if v not in ("", None)}
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield n, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield n, {"__error__": f"malformed JSON: {exc}"}
    else:
        raise ImportFailed(f"{path.name}: use a .csv (with a header) or .jsonl file")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check(model: type[SourceEvent], record: dict[str, Any]) -> SourceEvent | list[dict[str, str]]:
    if "__error__" in record:
        return [{"field": "record", "reason": "malformed_json", "message": record["__error__"]}]
    if "origin" in model.model_fields and not record.get("origin"):
        # The importer exists for civil-status books and archives: what it imports is a
        # digitised record unless the row says otherwise, and opens no interconnection case.
        record = {**record, "origin": RecordOrigin.DIGITISED.value}
    chosen = record.get("interconnection")
    if chosen in ("", None):
        record = {k: v for k, v in record.items() if k != "interconnection"}
    elif isinstance(chosen, str):  # a CSV cell holding the interconnected dossier as JSON
        try:
            record = {**record, "interconnection": json.loads(chosen)}
        except json.JSONDecodeError as exc:
            return [{"field": "interconnection", "reason": "malformed_json", "message": str(exc)}]
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        return field_errors(exc)


async def import_file(
    path: Path,
    source: str,
    kafka: Connectable,
    progress: Callable[[int, int], None] | None = None,
    max_batches: int | None = None,
) -> ImportState:
    """Import ``path`` into ``source``'s topic; resumes from the checkpoint if there is one."""
    if source not in SOURCES:
        raise ImportFailed(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    if not path.exists():
        raise ImportFailed(f"{path} does not exist")
    topic, model = SOURCES[source]
    state_path = path.with_name(path.name + ".import-state.json")
    rejects_path = path.with_name(path.name + ".rejects.jsonl")
    size = path.stat().st_size
    state = ImportState.load(state_path) or ImportState(size=size)
    if state.size != size:
        raise ImportFailed(f"{state_path.name} belongs to a different version of {path.name}; "
                           "delete it to import from the start")  # fmt: skip
    codec = Codec()
    provenance = [("hub-import-file", path.name.encode()),
                  ("hub-import-sha256", file_sha256(path).encode())]  # fmt: skip
    producer = await start_client(AIOKafkaProducer(**options(kafka), acks="all",
                                               enable_idempotence=True, linger_ms=10))  # fmt: skip
    batches = 0
    try:
        # Rejects hold the records themselves (personal data): the owner's eyes only.
        fd = os.open(rejects_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as rejects:
            batch: list[tuple[int, dict[str, Any]]] = []
            for n, record in rows(path):
                if n <= state.line:
                    continue
                batch.append((n, record))
                if len(batch) >= BATCH:
                    await _flush(
                        batch, model, topic.value, codec, producer, rejects, state, provenance
                    )
                    state.save(state_path)
                    batch = []
                    batches += 1
                    if progress:
                        progress(state.produced, state.rejected)
                    if max_batches is not None and batches >= max_batches:
                        return state
            if batch:
                await _flush(batch, model, topic.value, codec, producer, rejects, state, provenance)
                state.save(state_path)
                if progress:
                    progress(state.produced, state.rejected)
    finally:
        await producer.stop()
    return state


async def _flush(batch: list[tuple[int, dict[str, Any]]], model: type[SourceEvent], topic: str,
                 codec: Codec, producer: AIOKafkaProducer, rejects: Any,
                 state: ImportState, provenance: list[tuple[str, bytes]]) -> None:  # fmt: skip
    futures = []
    for n, record in batch:
        got = check(model, record)
        if isinstance(got, list):
            rejects.write(json.dumps({"line": n, "errors": got, "record": record},
                                     ensure_ascii=False, default=str) + "\n")  # fmt: skip
            state.rejected += 1
            continue
        value = codec.encode(got.SCHEMA, got.to_avro())
        headers = [*provenance, ("hub-import-line", str(n).encode())]
        futures.append(await producer.send(topic, key=got.subject_id().encode(), value=value,
                                           headers=headers))  # fmt: skip
    for fut in futures:
        await fut
    rejects.flush()
    state.produced += len(futures)
    state.line = batch[-1][0]
