"""The codec: spec-exact single-object encoding, evolution, typed errors, interoperability."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime

import avro.io
import avro.schema
import pytest

from hub.domain.events import BirthRegistration
from hub.domain.topics import SourceTopic
from hub.sim.traffic import Traffic
from hub.wire.codec import (
    HEADER_LEN,
    MAGIC,
    BadMagic,
    Codec,
    CodecError,
    CorruptDatum,
    EmptyMessage,
    UnknownFingerprint,
    _load,
)

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()


@pytest.fixture(scope="module")
def traffic(codec: Codec) -> Traffic:
    return Traffic(codec, seed=11, provinces=4, population=300, now=NOW)


@pytest.mark.parametrize("topic", list(SourceTopic))
def test_every_source_schema_round_trips(
    codec: Codec, traffic: Traffic, topic: SourceTopic
) -> None:
    for _ in range(20):
        event = traffic.event(topic)
        name, record = codec.decode(codec.encode(event.SCHEMA, event.to_avro()))
        assert name == event.SCHEMA
        assert type(event).model_validate(record) == event


def test_header_is_magic_then_little_endian_crc64_of_canonical_form(codec: Codec) -> None:
    version = codec.schema(BirthRegistration.SCHEMA)
    canonical = avro.schema.parse(version.path.read_text()).canonical_form
    expected = avro.schema.parse(canonical).fingerprint("CRC-64-AVRO")
    assert version.fingerprint == expected
    data = codec.encode(BirthRegistration.SCHEMA, _birth(codec))
    assert data[:2] == MAGIC == b"\xc3\x01"
    assert data[2:HEADER_LEN] == expected


def test_apache_avro_reads_what_the_codec_writes(codec: Codec, traffic: Traffic) -> None:
    event = traffic.event(SourceTopic.BIRTH)
    data = codec.encode(event.SCHEMA, event.to_avro())
    schema = avro.schema.parse(codec.schema(event.SCHEMA).path.read_text())
    # Apache avro (Python 1.12) keeps {"type": "string"} for logical-typed primitives in its
    # canonical form, against the spec's [PRIMITIVES] rule; its fingerprint of the spec's
    # canonical form (logical types stripped, as Java's SchemaNormalization does) must match.
    spec_canonical = avro.schema.parse(_strip_logical_types(schema.to_json()))
    assert data[2:HEADER_LEN] == spec_canonical.fingerprint("CRC-64-AVRO")
    reader = avro.io.DatumReader(schema)
    record = reader.read(avro.io.BinaryDecoder(io.BytesIO(data[HEADER_LEN:])))
    assert record["child_id"] == event.child_id
    assert record["child_full_name"] == event.child_full_name


def test_v1_writer_is_read_as_v2_and_v2_by_a_v1_reader(codec: Codec, traffic: Traffic) -> None:
    v1 = _load(codec.current[BirthRegistration.SCHEMA].path.parent / "history/civil_birth.v1.avsc")
    v2 = codec.schema(BirthRegistration.SCHEMA)
    assert v1.fingerprint != v2.fingerprint
    event = traffic.event(SourceTopic.BIRTH)
    old = event.to_avro()
    old.pop("birth_weight_grams")
    name, as_v2 = codec.decode(Codec.encode_with(v1, old))
    assert name == BirthRegistration.SCHEMA and as_v2["birth_weight_grams"] is None
    new = codec.encode(event.SCHEMA, event.to_avro())
    _, as_v1 = codec.decode(new, reader=v1)
    assert "birth_weight_grams" not in as_v1 and as_v1["child_id"] == event.child_id


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyMessage),
        (b"\x00", BadMagic),
        (b'{"json": true}', BadMagic),
        (b"\xc3\x01\x00\x00", BadMagic),
        (b"\xc3\x01" + bytes(8) + b"\x02", UnknownFingerprint),
    ],
)
def test_malformed_input_raises_the_typed_error(
    codec: Codec, data: bytes, error: type[CodecError]
) -> None:
    with pytest.raises(error) as info:
        codec.decode(data)
    assert info.value.reason and info.value.retriable is False


def test_truncated_and_trailing_bytes_are_corrupt(codec: Codec) -> None:
    good = codec.encode(BirthRegistration.SCHEMA, _birth(codec))
    with pytest.raises(CorruptDatum):
        codec.decode(good[: len(good) - 5])
    with pytest.raises(CorruptDatum):
        codec.decode(good + b"\x00")


def test_fuzz_10k_random_and_mutated_inputs_decode_or_raise_typed_errors(
    codec: Codec, traffic: Traffic
) -> None:
    rng = random.Random(20261124)
    seeds = [traffic.message(traffic.event()).value for _ in range(50)]
    outcomes = {"decoded": 0, "typed_error": 0}
    for i in range(10_000):
        base = bytearray(rng.choice(seeds))
        mode = i % 4
        if mode == 0:
            data = rng.randbytes(rng.randrange(0, 64))
        elif mode == 1:  # flip bytes inside the datum
            for _ in range(rng.randrange(1, 4)):
                pos = rng.randrange(HEADER_LEN, len(base))
                base[pos] = rng.randrange(256)
            data = bytes(base)
        elif mode == 2:  # truncate anywhere
            data = bytes(base[: rng.randrange(0, len(base))])
        else:  # valid header, random body
            data = bytes(base[:HEADER_LEN]) + rng.randbytes(rng.randrange(0, 80))
        try:
            codec.decode(data)
            outcomes["decoded"] += 1
        except CodecError:
            outcomes["typed_error"] += 1
    assert sum(outcomes.values()) == 10_000
    assert outcomes["typed_error"] > 1000


def _birth(codec: Codec) -> dict[str, object]:
    traffic = Traffic(codec, seed=5, provinces=2, population=50, now=NOW)
    return traffic.event(SourceTopic.BIRTH).to_avro()


def test_every_schema_file_is_documented() -> None:
    codec = Codec()
    for version in codec.current.values():
        raw = json.loads(version.path.read_text())
        assert raw.get("doc"), version.path
        assert all(f.get("doc") for f in raw["fields"]), version.path


def _strip_logical_types(node: object) -> str:
    def strip(n: object) -> object:
        if isinstance(n, dict):
            if "logicalType" in n and n.get("type") in {"int", "long", "string", "bytes"}:
                return n["type"]
            return {k: strip(v) for k, v in n.items()}
        if isinstance(n, list):
            return [strip(v) for v in n]
        return n

    return json.dumps(strip(node))
