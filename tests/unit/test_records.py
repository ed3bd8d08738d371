"""The unified envelope the worker builds as a plain dict is a valid ``UnifiedEvent`` (the
contract model) and encodes to the same bytes as the model's dump, for every event type the
simulator makes (a field added to the model and forgotten in the pipeline, or a value the model
would convert, would differ here)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from hub.domain.records import UnifiedEvent
from hub.sim.traffic import Traffic
from hub.stream.pipeline import Accepted, Pipeline, PipelineConfig
from hub.types import Incoming
from hub.wire.codec import Codec


def test_the_envelope_dict_is_a_valid_unified_event_and_encodes_as_the_model_does() -> None:
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
        model = UnifiedEvent.model_validate(env)  # strict about extra and missing fields
        assert model.model_dump() == {**env, "event_id": UUID(env["event_id"])}
        assert env["event_id"] == str(UUID(env["event_id"])), "the canonical text of a UUID"
        assert codec.encode(UnifiedEvent.SCHEMA, env) == codec.encode(
            UnifiedEvent.SCHEMA, model.model_dump()
        )
        seen.add(m.topic)
        if env["quality"]["issues"]:
            seen.add("with issues")
    assert len(seen) >= 8, f"every source topic and some quality issues covered: {seen}"
