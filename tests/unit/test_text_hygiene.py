"""Text hygiene as an adversary would test it: hostile strings in every string field of every
event type, through the models (the gateway's and the importer's door) and through the worker's
pipeline from raw Avro bytes. Every input is accepted clean or refused with a specific reason."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.domain.events import SOURCE_MODELS, BirthRegistration, SourceEvent
from hub.domain.identity import verify
from hub.domain.records import PopulationRecord
from hub.domain.text import MAX_CODE, MAX_FREE_TEXT, MAX_NAME, name_key
from hub.domain.topics import SourceTopic
from hub.sim.traffic import Traffic
from hub.store.sql import SqliteStore, batch_from
from hub.stream.pipeline import RULE_REASONS, Accepted, Pipeline, PipelineConfig, Rejected
from hub.types import Incoming
from hub.wire.codec import Codec

CODEC = Codec()
NOW = datetime.now(UTC)
TRAFFIC = Traffic(CODEC, seed=11, provinces=2, population=50, now=NOW)
SAMPLES: dict[SourceTopic, SourceEvent] = {t: TRAFFIC.event(t) for t in SOURCE_MODELS}
# What a refusal of a hostile string may say: a hygiene reason, or a rule the string broke
# (an unknown unit code, an ID that is not 12 digits, an enum value that does not exist, …).
HYGIENE = {"control_character", "invisible_name", "field_too_long", "empty_name"}

# Control (Cc), format (Cf: zero-width, bidi overrides, BOM) and surrogate (Cs) characters.
BAD_CHARS = st.sampled_from(
    ["\x00", "\x07", "\x1b", "\u202e", "\u200b", "\ufeff", "\u2066", "\ud800", "\udfff", "\x7f"]
)
LETTERS = st.text(st.characters(categories=["Lu", "Ll", "Mn", "Zs", "Nd"]), max_size=40)
HOSTILE = st.one_of(
    st.builds(lambda a, c, b: a + c + b, LETTERS, BAD_CHARS, LETTERS),  # one bad char inside
    st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zs"]), min_size=1, max_size=20),
    st.builds(lambda n: "Nguyễn " * n, st.integers(15, 400)),  # overlong
    st.builds(lambda s: unicodedata.normalize("NFD", s), LETTERS),  # decomposed
    st.builds(lambda s: s + "Иван王", LETTERS),  # mixed scripts
    st.text(max_size=60),
)


def string_fields(model: type[SourceEvent]) -> list[str]:
    fields = []
    for name, info in model.model_fields.items():
        annotation = str(info.annotation)
        if annotation in ("<class 'str'>", "str | None", "typing.Optional[str]", "list[str]"):
            fields.append(name)
    return fields


CASES = [(topic, f) for topic, model in SOURCE_MODELS.items() for f in string_fields(model)]


def assert_clean(event: SourceEvent) -> None:
    """An accepted event holds no forbidden character, only NFC text, nothing over its limit."""
    for name, value in event.model_dump().items():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text), name
            assert unicodedata.is_normalized("NFC", text), name
            limit = MAX_NAME if name in event.NAME_FIELDS else MAX_FREE_TEXT
            assert len(text) <= max(limit, MAX_CODE), name


def test_every_event_type_has_string_fields_under_test() -> None:
    covered = {topic for topic, _ in CASES}
    assert covered == set(SOURCE_MODELS)
    assert ("src.civil.birth.v1", "child_full_name") in {(t.value, f) for t, f in CASES}


@pytest.mark.parametrize(("topic", "field"), CASES, ids=[f"{t.name}.{f}" for t, f in CASES])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=HOSTILE)
def test_hostile_strings_are_accepted_clean_or_refused_with_a_reason(
    topic: SourceTopic, field: str, value: str
) -> None:
    model = SOURCE_MODELS[topic]
    data = SAMPLES[topic].to_avro()
    data[field] = [value] if isinstance(data.get(field), list) else value
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        assert errors, "a refusal names its reason"
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
            assert errors[0]["type"] == "control_character"
        return
    assert_clean(event)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Nguyễn Văn\x00An", "control_character"),
        ("\u200b\u200b\u200b", "control_character"),
        ("Nguyễn \u202eAn", "control_character"),
        ("Nguyễn\x07 An", "control_character"),
        ("Nguyễn\x1b[31m An", "control_character"),
        ("\ufeffNguyễn An", "control_character"),
        ("Nguyễn \ud800An", "control_character"),
        ("123 456", "invisible_name"),
        ("...", "invisible_name"),
        ("A" * (MAX_NAME + 1), "field_too_long"),
        ("   ", "empty_name"),
    ],
)
def test_hostile_names_are_refused_with_their_reason(name: str, reason: str) -> None:
    data = SAMPLES[SourceTopic.BIRTH].to_avro()
    data["child_full_name"] = name
    with pytest.raises(ValidationError) as info:
        BirthRegistration.model_validate(data)
    assert info.value.errors()[0]["type"] == reason
    assert info.value.errors()[0]["loc"] == ("child_full_name",)


def test_free_text_and_codes_have_their_own_limits() -> None:
    data = SAMPLES[SourceTopic.BIRTH].to_avro()
    BirthRegistration.model_validate({**data, "place_of_birth": "x" * MAX_FREE_TEXT})
    with pytest.raises(ValidationError) as info:
        BirthRegistration.model_validate({**data, "place_of_birth": "x" * (MAX_FREE_TEXT + 1)})
    assert info.value.errors()[0]["type"] == "field_too_long"
    with pytest.raises(ValidationError) as info:
        BirthRegistration.model_validate({**data, "registration_number": "9" * (MAX_CODE + 1)})
    assert info.value.errors()[0]["type"] == "field_too_long"


@pytest.mark.parametrize(("topic", "field"), CASES, ids=[f"{t.name}.{f}" for t, f in CASES])
def test_the_worker_dead_letters_a_nul_from_raw_avro_and_stores_the_rest(
    topic: SourceTopic, field: str, tmp_path: Any
) -> None:
    """The worker's door: Avro accepts a NUL in any string; the pipeline refuses it, and what
    it accepts the store (here SQLite, PostgreSQL in the integration suite) takes."""
    pipeline = Pipeline(CODEC, PipelineConfig())
    data = SAMPLES[topic].to_avro()
    data["event_id"] = uuid.uuid4()
    good = CODEC.encode(SAMPLES[topic].SCHEMA, data)
    value = data[field]
    if isinstance(value, list):
        data[field] = ["A00\x00"]
    else:
        data[field] = (value or "x")[:5] + "\x00" + (value or "x")[5:]
    bad = CODEC.encode(SAMPLES[topic].SCHEMA, data)
    outcomes = [
        pipeline.process(Incoming(topic.value, 0, i, b"k", v), lambda _: None, lambda _: None, NOW)
        for i, v in enumerate([good, bad])
    ]
    assert isinstance(outcomes[0], Accepted)
    assert isinstance(outcomes[1], Rejected)
    assert outcomes[1].reason == "control_character"
    assert outcomes[1].reason in RULE_REASONS
    store = SqliteStore(f"sqlite:///{tmp_path}/s.sqlite3")
    store.open()
    assert store.write(batch_from([(outcomes[0].envelope, outcomes[0].event)], NOW)) == 1
    store.close()


def test_name_matching_ignores_case_and_spacing_but_not_diacritics() -> None:
    assert name_key("NGUYỄN  VĂN AN") == name_key("nguyễn văn an")
    assert name_key(unicodedata.normalize("NFD", "Lê Văn")) == name_key("LÊ VĂN")
    assert name_key("Le Van") != name_key("Lê Văn")
    event = SAMPLES[SourceTopic.DEATH]
    person = PopulationRecord(
        personal_id=event.subject_id(),
        full_name=event.model_dump()["deceased_full_name"].upper(),
        sex=event.model_dump()["deceased_sex"],
        date_of_birth=event.model_dump()["deceased_date_of_birth"],
        province_code="79",
        commune_code="26734",
        updated_at=NOW,
    )
    assert "name_mismatch" not in verify(event, lambda _: person)


def test_every_offending_field_is_reported_at_its_own_location() -> None:
    """One pass over the record (not a validator per field) still names each bad field."""
    birth = SAMPLES[SourceTopic.BIRTH].model_dump()
    birth.update(source_system="dvc\x00x", child_full_name="An\u202e", place_of_birth="x" * 3000)
    with pytest.raises(ValidationError) as err:
        BirthRegistration.model_validate(birth)
    found = {(e["loc"], e["type"]) for e in err.value.errors()}
    assert found == {
        (("source_system",), "control_character"),
        (("child_full_name",), "control_character"),
        (("place_of_birth",), "field_too_long"),
    }


def test_a_nested_records_bad_field_is_located_inside_it() -> None:
    birth = SAMPLES[SourceTopic.BIRTH].model_dump()
    assert birth["interconnection"] is not None
    birth["interconnection"]["dossier_code"] = "G01\x1b[2J"
    with pytest.raises(ValidationError) as err:
        BirthRegistration.model_validate(birth)
    (error,) = err.value.errors()
    assert error["loc"] == ("interconnection", "dossier_code")
    assert error["type"] == "control_character"


def test_an_unknown_field_stays_an_unknown_field_whatever_it_holds() -> None:
    birth = SAMPLES[SourceTopic.BIRTH].model_dump() | {"nickname": "\x00"}
    with pytest.raises(ValidationError) as err:
        BirthRegistration.model_validate(birth)
    assert [e["type"] for e in err.value.errors()] == ["extra_forbidden"]


def test_names_are_cleaned_and_the_rest_kept_as_sent() -> None:
    birth = SAMPLES[SourceTopic.BIRTH].model_dump()
    birth["child_full_name"] = "  " + unicodedata.normalize("NFD", "Nguyễn   Văn  An") + " "
    event = BirthRegistration.model_validate(birth)
    assert event.child_full_name == "Nguyễn Văn An"
    assert unicodedata.is_normalized("NFC", event.child_full_name)
    assert event.registration_number == birth["registration_number"]
