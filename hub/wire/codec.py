"""Avro single-object encoding, exactly as the Avro specification defines it.

``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's parsing
canonical form + the binary datum. Schemas are parsed once, at start; decoding finds the
writer schema by fingerprint among every known schema (current and historical versions) and
resolves it to the reader schema, so old writers keep working after a compatible evolution.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_LEN = 10  # 2 magic bytes + 8 fingerprint bytes
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


class CodecError(Exception):
    """A message that can never be decoded: permanent, dead-letter it with ``reason``."""

    reason = "undecodable"
    retriable = False


class EmptyMessage(CodecError):
    reason = "empty_message"


class BadMagic(CodecError):
    reason = "bad_magic"


class UnknownFingerprint(CodecError):
    reason = "unknown_fingerprint"


class CorruptDatum(CodecError):
    reason = "corrupt_datum"


class UnknownSchema(CodecError):
    reason = "unknown_schema"


@dataclass(frozen=True)
class SchemaVersion:
    """One parsed schema version."""

    name: str  # full name, e.g. vn.lienthong.hub.BirthRegistration
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO, as in the header
    parsed: Any  # fastavro's parsed schema
    raw: Mapping[str, Any]
    path: Path


def _load(path: Path) -> SchemaVersion:
    raw = json.loads(path.read_text(encoding="utf-8"))
    canonical = to_parsing_canonical_form(fastavro.parse_schema(raw, _write_hint=False))
    return SchemaVersion(
        name=f"{raw['namespace']}.{raw['name']}",
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        # With the "already parsed" hint: without it fastavro parses the schema again on every
        # read and write (more than half of each call's time; docs/BENCHMARKS.md).
        parsed=fastavro.parse_schema(raw),
        raw=raw,
        path=path,
    )


class Codec:
    """Encode and decode single-object Avro against a fixed set of schemas.

    ``schemas/*.avsc`` are the current (reader) versions; ``schemas/history/*.avsc`` are older
    writer versions that must still decode.
    """

    def __init__(self, schemas_dir: Path = SCHEMAS_DIR) -> None:
        current = [_load(p) for p in sorted(schemas_dir.glob("*.avsc"))]
        history = [_load(p) for p in sorted((schemas_dir / "history").glob("*.avsc"))]
        self.current: dict[str, SchemaVersion] = {v.name: v for v in current}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {
            v.fingerprint: v for v in [*history, *current]
        }

    def schema(self, name: str) -> SchemaVersion:
        try:
            return self.current[name]
        except KeyError:
            raise UnknownSchema(f"no schema named {name!r}") from None

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``record`` with the current version of schema ``name``."""
        return self.encode_with(self.schema(name), record)

    @staticmethod
    def encode_with(version: SchemaVersion, record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(version.fingerprint)
        fastavro.schemaless_writer(buf, version.parsed, record)
        return buf.getvalue()

    def writer_of(self, data: bytes) -> SchemaVersion:
        """The writer schema named by the header of ``data``; raises a typed :class:`CodecError`."""
        if not data:
            raise EmptyMessage("message is empty")
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise BadMagic(f"not Avro single-object encoding (starts with {data[:2].hex() or '-'})")
        fp = data[2:HEADER_LEN]
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UnknownFingerprint(f"no known schema has fingerprint {fp.hex()}") from None

    def decode(
        self, data: bytes, reader: SchemaVersion | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Decode to (schema full name, record), resolved to the current version of that schema.

        ``reader`` overrides the reader schema (for example an old version, to check that old
        readers still read new data).
        """
        writer = self.writer_of(data)
        target = reader or self.current.get(writer.name, writer)
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(
                buf, writer.parsed, None if target is writer else target.parsed
            )
        except (EOFError, ValueError, IndexError, KeyError, UnicodeDecodeError, TypeError,
                OverflowError, MemoryError) as exc:  # fmt: skip
            raise CorruptDatum(f"{writer.name}: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise CorruptDatum(f"{writer.name}: {len(data) - buf.tell()} trailing bytes")
        if not isinstance(record, dict):
            raise CorruptDatum(f"{writer.name}: datum is not a record")
        return writer.name, record


class FaustAvroCodec:
    """The codec as a faust codec object, passed to topics as ``value_serializer``.

    Decoding returns the raw bytes untouched: the pipeline decodes itself so that a bad message
    becomes a dead letter with a reason instead of an exception inside faust's consumer.
    """

    def __init__(self, codec: Codec, schema_name: str) -> None:
        self.codec = codec
        self.schema_name = schema_name

    def dumps(self, obj: Any) -> bytes:
        if isinstance(obj, bytes):
            return obj
        return self.codec.encode(self.schema_name, obj)

    def loads(self, data: bytes) -> bytes:
        return data
