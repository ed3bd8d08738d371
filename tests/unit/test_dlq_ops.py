"""The dead-letter tools' pure parts: grouping for `hub dlq list`, choosing for a replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.domain.records import DeadLetter, Stage
from hub.ops.dlq import Grouping, Ledger, Letter, chosen

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def letter(offset: int, topic: str, reason: str, stage: Stage, at: datetime) -> Letter:
    record = DeadLetter(original_topic=topic, original_partition=0, original_offset=offset,
                        original_value=b"x", stage=stage, reason=reason,
                        detail=f"detail {offset}", failed_at=at, worker="w")  # fmt: skip
    return Letter(f"dlq.{topic}", 0, offset, record)


LETTERS = [
    letter(0, "src.civil.birth.v1", "date_in_future", Stage.VALIDATE, T0),
    letter(1, "src.civil.birth.v1", "bad_magic", Stage.DECODE, T0 + timedelta(minutes=1)),
    letter(2, "src.civil.birth.v1", "date_in_future", Stage.VALIDATE, T0 + timedelta(minutes=2)),
    letter(3, "src.civil.death.v1", "date_in_future", Stage.VALIDATE, T0 + timedelta(minutes=3)),
    letter(4, "src.civil.birth.v1", "date_in_future", Stage.VALIDATE, T0 + timedelta(minutes=4)),
]


def test_groups_count_each_topic_stage_and_reason_largest_first_with_the_first_detail() -> None:
    groups = Grouping()
    for one in LETTERS:
        groups.add(one)
    assert [(g.topic, g.stage, g.reason, g.count, g.example) for g in groups.result()] == [
        ("src.civil.birth.v1", "VALIDATE", "date_in_future", 3, "detail 0"),
        ("src.civil.birth.v1", "DECODE", "bad_magic", 1, "detail 1"),
        ("src.civil.death.v1", "VALIDATE", "date_in_future", 1, "detail 3"),
    ]


def test_a_replay_chooses_by_topic_reason_time_and_what_was_not_replayed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.json")
    birth = "src.civil.birth.v1"

    def offsets(reason: str | None = None, since: datetime | None = None) -> list[int]:
        return [one.offset for one in LETTERS if chosen(one, birth, reason, ledger, since)]

    assert offsets() == [0, 1, 2, 4]
    assert offsets("date_in_future") == [0, 2, 4]
    assert offsets(since=T0 + timedelta(minutes=2)) == [2, 4], "at or after the time"
    ledger.done.add(LETTERS[2].ref)
    ledger.save()
    assert offsets("date_in_future") == [0, 4]
    assert Ledger(tmp_path / "ledger.json").done == {"dlq.src.civil.birth.v1:0:2"}
