"""The pure stages of the pipeline, without Kafka: identity, quality, workflows, cases,
dossier indicators, the dead-letter limit, and the pipeline's outcome per message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.domain.enums import CodeSystem, Sex
from hub.domain.events import (
    BirthRegistration,
    DeathRegistration,
    HealthEncounter,
)
from hub.domain.identity import register_update, verify
from hub.domain.quality import score
from hub.domain.records import PopulationRecord, Stage
from hub.domain.topics import SourceTopic
from hub.settings import IdentityMode
from hub.sim.traffic import POISON_REASONS, Traffic
from hub.stream.dead_letters import DeadLetterLimit, DeadLetterLimitExceeded, dead_letter
from hub.stream.pipeline import Accepted, Pipeline, PipelineConfig, Rejected
from hub.types import Incoming
from hub.wire.codec import Codec

CODEC = Codec()
NOW = datetime.now(UTC)


@pytest.fixture
def traffic() -> Traffic:
    return Traffic(CODEC, seed=7, provinces=3, population=200, now=NOW)


def register_of(traffic: Traffic) -> dict[str, PopulationRecord]:
    return {p.personal_id: p for p in traffic.people}


def event_of(traffic: Traffic, topic: SourceTopic) -> Any:
    return traffic.event(topic)


# ---- identity --------------------------------------------------------------------------
def test_a_health_event_for_a_registered_person_has_no_identity_issue(traffic: Traffic) -> None:
    event = event_of(traffic, SourceTopic.ENCOUNTER)
    assert verify(event, register_of(traffic).get) == []


def test_unknown_and_disagreeing_subjects_are_reported(traffic: Traffic) -> None:
    event: HealthEncounter = event_of(traffic, SourceTopic.ENCOUNTER)
    assert verify(event, lambda _: None) == ["subject_unknown"]
    person = register_of(traffic)[event.patient_id]
    other_sex = Sex.FEMALE if person.sex is Sex.MALE else Sex.MALE
    wrong = person.model_copy(
        update={"full_name": "Khác Tên", "sex": other_sex,
                "date_of_birth": person.date_of_birth - timedelta(days=1), "deceased": True}
    )  # fmt: skip
    assert verify(event, {event.patient_id: wrong}.get) == [
        "name_mismatch", "sex_mismatch", "dob_mismatch", "subject_deceased",
    ]  # fmt: skip


def test_a_birth_adds_the_child_and_a_death_marks_the_person_deceased(traffic: Traffic) -> None:
    birth: BirthRegistration = event_of(traffic, SourceTopic.BIRTH)
    added = register_update(birth, lambda _: None)
    assert added is not None and added.personal_id == birth.child_id and not added.deceased
    register = register_of(traffic)  # before the generator marks the person deceased
    death: DeathRegistration = event_of(traffic, SourceTopic.DEATH)
    marked = register_update(death, register.get)
    assert marked is not None and marked.deceased and marked.date_of_death == death.date_of_death
    assert register_update(death, {death.deceased_id: marked}.get) is None, "already deceased"


# ---- quality ---------------------------------------------------------------------------
def test_quality_dimensions_follow_the_event(traffic: Traffic) -> None:
    event = event_of(traffic, SourceTopic.ENCOUNTER)
    fresh = score(event, [], False, event.occurred_at + timedelta(seconds=1), timedelta(minutes=5))
    assert fresh["correct"] and fresh["clean"] and fresh["alive"] and fresh["shared"]
    assert fresh["unified"] is (event.code_system is CodeSystem.V2025)
    stale = score(event, ["subject_unknown"], True, event.occurred_at + timedelta(hours=1),
                  timedelta(minutes=5))  # fmt: skip
    assert not stale["alive"] and not stale["clean"]
    assert {"stale", "duplicate", "subject_unknown"} <= set(stale["issues"])


def test_a_record_without_expected_fields_is_not_sufficient(traffic: Traffic) -> None:
    birth: BirthRegistration = event_of(traffic, SourceTopic.BIRTH)
    orphan = birth.model_copy(update={"mother_id": None})
    flags = score(orphan, [], False, NOW, timedelta(minutes=5))
    assert not flags["sufficient"] and "missing_mother_id" in flags["issues"]


# ---- dead letters ----------------------------------------------------------------------
def test_the_dead_letter_limit_stops_only_when_the_ratio_is_exceeded() -> None:
    limit = DeadLetterLimit(window=10, max_ratio=0.5)
    for dead in [True, False] * 20:  # exactly half: still running
        limit.record(dead)
    with pytest.raises(DeadLetterLimitExceeded, match="hub dlq list"):
        for _ in range(10):
            limit.record(True)


def test_a_dead_letter_keeps_the_original_bytes_and_origin() -> None:
    msg = Incoming("src.civil.birth.v1", 2, 41, b"k", b"\x00\x01", (("trace", b"t"),))
    rejected = Rejected(Stage.DECODE, "bad_magic", "not single-object encoded")
    letter = dead_letter(msg, rejected, NOW, "w1")
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        "src.civil.birth.v1", 2, 41,
    )  # fmt: skip
    assert letter.original_value == b"\x00\x01" and letter.original_key == b"k"
    assert letter.original_headers[0].key == "trace" and letter.reason == "bad_magic"


# ---- the pipeline, message in, outcome out -----------------------------------------------
def pipeline(mode: IdentityMode = IdentityMode.FLAG) -> Pipeline:
    return Pipeline(CODEC, PipelineConfig(identity_mode=mode))


def incoming(msg: Any, offset: int = 0) -> Incoming:
    return Incoming(msg.topic, 0, offset, msg.key, msg.value)


def test_every_poison_kind_is_rejected_with_its_reason(traffic: Traffic) -> None:
    p = pipeline()
    register = register_of(traffic)
    for kind, reason in POISON_REASONS.items():
        outcome = p.process(incoming(traffic.poison(kind)), register.get, lambda _: None, NOW)
        assert isinstance(outcome, Rejected), kind
        assert outcome.reason == reason, (kind, outcome)


def test_valid_events_become_envelopes_in_2025_codes_keyed_by_subject(traffic: Traffic) -> None:
    p = pipeline()
    register = register_of(traffic)
    for i, msg in enumerate(traffic.stream(300)):
        outcome = p.process(incoming(msg, i), register.get, lambda _: None, NOW)
        assert isinstance(outcome, Accepted), outcome
        env = outcome.envelope
        assert outcome.key.encode() == msg.key
        assert env["province_code"] in traffic.province_codes
        assert p.units.exists(CodeSystem.V2025, env["province_code"], env["commune_code"],
                              None) == ""  # fmt: skip
        assert env["payload"] == msg.value and env["lineage"]["offset"] == i
        if outcome.register is not None:
            register[outcome.register.personal_id] = outcome.register


def test_a_redelivered_event_is_not_a_duplicate_but_a_second_copy_is(traffic: Traffic) -> None:
    p = pipeline()
    msg = traffic.message(traffic.event(SourceTopic.BIRTH))
    first = incoming(msg, 5)
    again = p.process(first, lambda _: None, lambda _: first.lineage, NOW)
    assert isinstance(again, Accepted) and not again.duplicate and again.tasks
    copy = p.process(incoming(msg, 9), lambda _: None, lambda _: first.lineage, NOW)
    assert isinstance(copy, Accepted) and copy.duplicate and copy.tasks == []


def test_identity_mode_dead_letter_rejects_unknown_subjects(traffic: Traffic) -> None:
    msg = traffic.message(traffic.event(SourceTopic.ENCOUNTER))
    outcome = pipeline(IdentityMode.DEAD_LETTER).process(
        incoming(msg), lambda _: None, lambda _: None, NOW
    )
    assert isinstance(outcome, Rejected)
    assert (outcome.stage, outcome.reason) == (Stage.VERIFY, "subject_unknown")
    flagged = pipeline().process(incoming(msg), lambda _: None, lambda _: None, NOW)
    assert isinstance(flagged, Accepted)
    assert "subject_unknown" in flagged.envelope["quality"]["issues"]
