"""The unified envelope's hand-built Avro record is pydantic's dump, field for field and byte
for byte, for every event type the simulator makes (a field added to the model and forgotten
in ``to_avro`` would differ here)."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.domain.records import UnifiedEvent
from hub.sim.traffic import Traffic
from hub.stream.pipeline import Accepted, Pipeline, PipelineConfig
from hub.types import Incoming
from hub.wire.codec import Codec


def test_the_envelopes_avro_record_is_its_model_dump_and_encodes_identically() -> None:
    codec = Codec()
    now = datetime.now(UTC)
    traffic = Traffic(codec, seed=5, provinces=3, population=200, now=now)
    pipeline = Pipeline(codec, PipelineConfig())
    seen: set[str] = set()
    for i, m in enumerate(traffic.stream(600, poison_share=0.0)):
        outcome = pipeline.process(Incoming(m.topic, 1, i, m.key, m.value), lambda _: None,
                                   lambda _: None, now)  # fmt: skip
        if not isinstance(outcome, Accepted):
            continue
        env = outcome.envelope
        assert env.to_avro() == env.model_dump()
        assert codec.encode(UnifiedEvent.SCHEMA, env.to_avro()) == codec.encode(
            UnifiedEvent.SCHEMA, env.model_dump()
        )
        seen.add(m.topic)
        if env.quality.issues:
            seen.add("with issues")
    assert len(seen) >= 8, f"every source topic and some quality issues covered: {seen}"
