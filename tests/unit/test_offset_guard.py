"""The offset guard: which offsets a jump skipped, and that skipped records come back in order."""

from __future__ import annotations

from typing import Any

from hub.kafka.offset_guard import OffsetGuard, skipped


def test_contiguous_offsets_skip_nothing() -> None:
    assert list(skipped(10, 10)) == []


def test_a_jump_skips_the_offsets_in_between() -> None:
    assert list(skipped(10, 13)) == [10, 11, 12]


def test_a_message_seen_again_after_a_seek_is_not_a_skip() -> None:
    assert list(skipped(10, 4)) == []


def test_unknown_start_is_not_a_skip() -> None:
    assert list(skipped(None, 500)) == []


class Recording(OffsetGuard):
    def __init__(self) -> None:
        super().__init__("unused:9092")
        self.reads: list[tuple[str, int, range]] = []

    async def read(self, topic: str, partition: int, offsets: range) -> list[Any]:
        self.reads.append((topic, partition, offsets))
        return list(offsets)


async def test_guard_reads_back_what_the_consumer_jumped_over() -> None:
    guard = Recording()
    guard.reset({("t", 0): 5})
    assert await guard.before("t", 0, 5) == []
    assert await guard.before("t", 0, 6) == []
    assert await guard.before("t", 0, 9) == [7, 8]
    assert guard.reads == [("t", 0, range(7, 9))]


async def test_guard_notices_a_skipped_first_message_after_an_assignment() -> None:
    guard = Recording()
    guard.reset({("t", 1): 100})
    assert await guard.before("t", 1, 101) == [100]


async def test_partitions_are_tracked_apart_and_redelivery_restarts_the_count() -> None:
    guard = Recording()
    assert await guard.before("t", 0, 50) == []
    assert await guard.before("t", 1, 7) == []
    assert await guard.before("t", 0, 40) == [], "a redelivered offset is no skip"
    assert await guard.before("t", 0, 42) == [41]
    assert await guard.before("t", 1, 8) == []
