"""Codec rates for the birth-registration record: the hub's codec (fastavro, single-object
encoding) beside the Apache ``avro`` package doing the same, in the same run, on one core.

Run: ``python -m hub.bench.codec [--records N]`` (prints a table; ``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import io
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import avro.io
import avro.schema

from hub.bench.mix import bench_traffic
from hub.domain.enums import CodeSystem
from hub.domain.events import BirthRegistration
from hub.domain.topics import SourceTopic
from hub.sim.traffic import Traffic
from hub.wire.codec import MAGIC, Codec

if TYPE_CHECKING:
    from hub.domain.records import PopulationRecord
    from hub.stream.pipeline import Pipeline
    from hub.types import Incoming


def _rate(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Median records/s of ``repeats`` timed runs of ``n`` calls."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n / (time.perf_counter() - start))
    return sorted(rates)[len(rates) // 2]


def run(records: int) -> dict[str, float]:
    codec = Codec()
    traffic = Traffic(codec, seed=3, now=datetime.now(UTC))
    event = traffic.event(SourceTopic.BIRTH)
    assert isinstance(event, BirthRegistration) and event.code_system in CodeSystem
    record: dict[str, Any] = event.to_avro()
    version = codec.schema(BirthRegistration.SCHEMA)
    data = codec.encode(BirthRegistration.SCHEMA, record)

    # The avro package wants uuids as strings; fastavro takes either.
    apache_record = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in record.items()}
    apache = avro.schema.parse(json.dumps(version.raw))
    writer = avro.io.DatumWriter(apache)
    reader = avro.io.DatumReader(apache, apache)

    def apache_encode() -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC + version.fingerprint)
        writer.write(apache_record, avro.io.BinaryEncoder(buf))
        return buf.getvalue()

    def apache_decode() -> object:
        return reader.read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))

    assert apache_encode() == data, "both libraries write the same bytes"
    return {
        "simulator_per_s": simulator_rate(codec, records),
        "pipeline_per_s": pipeline_rate(codec, records),
        "hub_encode_per_s": _rate(lambda: codec.encode(BirthRegistration.SCHEMA, record), records),
        "hub_decode_per_s": _rate(lambda: codec.decode(data), records),
        "avro_encode_per_s": _rate(apache_encode, records),
        "avro_decode_per_s": _rate(apache_decode, records),
        "record_bytes": float(len(data)),
    }


def _simulated(codec: Codec, records: int
               ) -> tuple[list[Incoming], dict[str, PopulationRecord], Pipeline]:  # fmt: skip
    """The simulator's mix as source messages, its register, and the pipeline to run them."""
    from hub.stream.pipeline import Pipeline, PipelineConfig
    from hub.types import Incoming

    traffic = Traffic(codec, seed=4, now=datetime.now(UTC))
    register = {p.personal_id: p for p in traffic.people}
    messages = [Incoming(m.topic, 0, i, m.key, m.value)
                for i, m in enumerate(traffic.stream(records))]  # fmt: skip
    return messages, register, Pipeline(codec, PipelineConfig())


def simulator_rate(codec: Codec, records: int) -> float:
    """Encoded events/s the simulator makes with the bench's population (``hub bench``'s
    pre-load and latency producer, ``hub simulate``), on one core."""
    traffic = bench_traffic(codec)
    start = time.perf_counter()
    made = sum(1 for _ in traffic.stream(records))
    return made / (time.perf_counter() - start)


def pipeline_rate(codec: Codec, records: int) -> float:
    """Events/s of the pure per-event pipeline (decode ▸ validate ▸ convert ▸ verify ▸ score ▸
    envelope ▸ encode the envelope) on the simulator's mix: one worker's CPU ceiling."""
    from hub.domain.records import UnifiedEvent
    from hub.stream.pipeline import Accepted

    messages, register, pipeline = _simulated(codec, records)
    now = datetime.now(UTC)
    start = time.perf_counter()
    for msg in messages:
        out = pipeline.process(msg, register.get, lambda _: None, now)
        if isinstance(out, Accepted):
            codec.encode(UnifiedEvent.SCHEMA, out.envelope)
    return records / (time.perf_counter() - start)


def pipeline_stages(codec: Codec, records: int, repeats: int = 3) -> dict[str, float]:
    """Microseconds an event of the simulator's mix spends in each stage of the pure pipeline,
    on one core (best of ``repeats``): where a worker's CPU goes before Kafka and the store."""
    from hub.domain.events import MODEL_OF_SCHEMA
    from hub.domain.records import UnifiedEvent
    from hub.stream.pipeline import Accepted, Rejected

    messages, register, pipeline = _simulated(codec, records)
    now = datetime.now(UTC)

    def best(stage: Callable[[], Any]) -> tuple[Any, float]:
        timings, result = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            result = stage()
            timings.append(time.perf_counter() - start)
        return result, min(timings) * 1e6 / len(messages)

    raw, decode_us = best(lambda: [codec.decode(m.value or b"") for m in messages])
    _, validate_us = best(lambda: [MODEL_OF_SCHEMA[name].model_validate(r) for name, r in raw])
    events, _ = best(lambda: [pipeline.decode(m) for m in messages])
    pairs = [(m, e) for m, e in zip(messages, events, strict=True) if not isinstance(e, Rejected)]
    unseen: Callable[[str], str | None] = lambda _: None  # noqa: E731

    def process() -> list[Any]:
        return [pipeline.process_event(m, e, register.get, unseen, now) for m, e in pairs]

    outcomes, process_us = best(process)
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    _, encode_us = best(lambda: [codec.encode(UnifiedEvent.SCHEMA, o.envelope)
                                 for o in accepted])  # fmt: skip
    return {"decode_us": decode_us, "validate_us": validate_us, "process_us": process_us,
            "encode_envelope_us": encode_us}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.records)
    figures |= pipeline_stages(Codec(), args.records)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"simulator, the bench's population: {figures['simulator_per_s']:,.0f} events/s made "
        "on one core"
    )
    print(f"pure pipeline, simulated mix: {figures['pipeline_per_s']:,.0f} events/s on one core")
    print("µs an event, per stage (best of 3): "
          f"Avro decode {figures['decode_us']:.1f}, validate {figures['validate_us']:.1f}, "
          f"the rest of the pipeline {figures['process_us']:.1f}, "
          f"envelope to Avro {figures['encode_envelope_us']:.1f}")  # fmt: skip
    print(f"birth registration record, {figures['record_bytes']:.0f} bytes, records/s on one core")
    print("| library | encode | decode |")
    print("|---|---:|---:|")
    print(f"| hub codec (fastavro) | {figures['hub_encode_per_s']:,.0f} | "
          f"{figures['hub_decode_per_s']:,.0f} |")  # fmt: skip
    print(f"| avro (Apache) | {figures['avro_encode_per_s']:,.0f} | "
          f"{figures['avro_decode_per_s']:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
