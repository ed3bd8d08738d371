"""Quality dimensions that measure something (issue 14): the register decides "correct" without
caring about letter case, ICD-10 codes must exist, stale register entries are not "alive"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.domain.events import HealthEncounter
from hub.domain.quality import score
from hub.domain.topics import SourceTopic
from hub.stream.pipeline import Accepted, Pipeline, PipelineConfig
from hub.types import Incoming
from hub.wire.codec import Codec

CODEC = Codec()
NOW = datetime.now(UTC).replace(microsecond=0)


def encounter(**changes: object) -> HealthEncounter:
    from hub.sim.traffic import Traffic

    traffic = Traffic(CODEC, seed=9, provinces=2, population=100, now=NOW)
    event: HealthEncounter = traffic.event(SourceTopic.ENCOUNTER)  # type: ignore[assignment]
    record = {**event.to_avro(), **changes}
    return HealthEncounter.model_validate(record)


def test_an_icd10_code_that_does_not_exist_is_not_unified() -> None:
    event = encounter(primary_diagnosis_icd10="Z99.99")  # well formed, not in ICD-10
    flags = score(event, [], False, NOW, timedelta(minutes=5))
    assert not flags["unified"] and "unknown_icd10:Z99.99" in flags["issues"]
    assert score(encounter(primary_diagnosis_icd10="J18.9"), [], False, NOW,
                 timedelta(minutes=5))["unified"]  # fmt: skip


def test_a_lower_case_register_entry_matches_an_upper_case_name() -> None:
    from hub.sim.traffic import Traffic

    traffic = Traffic(CODEC, seed=9, provinces=2, population=100, now=NOW)
    event = traffic.event(SourceTopic.ENCOUNTER)
    register = {p.personal_id: p for p in traffic.people}
    person = register[event.subject_id()]
    register[person.personal_id] = person.model_copy(update={"full_name": person.full_name.lower()})
    shouting = event.model_copy(update={"patient_full_name": person.full_name.upper()})
    pipeline = Pipeline(CODEC, PipelineConfig())
    msg = Incoming(SourceTopic.ENCOUNTER.value, 0, 1, b"k",
                   CODEC.encode(shouting.SCHEMA, shouting.to_avro()))  # fmt: skip
    outcome = pipeline.process(msg, register.get, lambda _: None, NOW)
    assert isinstance(outcome, Accepted)
    assert outcome.envelope["quality"]["correct"] and outcome.envelope["quality"]["clean"]


def test_a_register_entry_not_refreshed_for_years_is_not_alive() -> None:
    event = encounter()
    fresh = score(event, [], False, NOW, timedelta(minutes=5), NOW - timedelta(days=30))
    old = score(event, [], False, NOW, timedelta(minutes=5), NOW - timedelta(days=800))
    assert fresh["alive"] and not old["alive"] and "register_stale" in old["issues"]
