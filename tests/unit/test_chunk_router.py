"""The worker's handling of one fetch without faust or Kafka: which records go where, which offsets
may be acknowledged, and that nothing is when either half fails."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from hub.metrics import HubMetrics
from hub.stream.chunks import ChunkRouter
from hub.types import Incoming

SOURCE, AGENCY = "src.civil.birth.v1", "agency.ack.police.v1"


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"v"
    headers: Any = ()


def records(topic: str, partition: int, offsets: range) -> list[Record]:
    return [Record(topic, partition, o) for o in offsets]


class Batches:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.failure: BaseException | None = None if ok else RuntimeError("store gone")
        self.seen: list[list[Incoming]] = []

    async def run(self, batch: list[Incoming]) -> bool:
        self.seen.append(batch)
        return self.ok


class Cases:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.seen: list[list[Incoming]] = []

    async def run(self, messages: list[Incoming]) -> None:
        self.seen.append(messages)
        if self.error:
            raise self.error


class Guard:
    """Says the consumer skipped ``skipped`` records before a partition's first offset."""

    def __init__(self, skipped: dict[tuple[str, int], list[Record]] | None = None) -> None:
        self.skipped = skipped or {}

    async def before(self, topic: str, partition: int, offset: int,
                     through: int | None = None) -> list[Any]:  # fmt: skip
        return self.skipped.pop((topic, partition), [])


def router(batches: Batches, cases: Cases, guard: Guard | None = None,
           ready: bool = True) -> tuple[ChunkRouter, list[BaseException], HubMetrics]:  # fmt: skip
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    event = asyncio.Event()
    if ready:
        event.set()
    metrics = HubMetrics.create(CollectorRegistry())
    chunks = ChunkRouter(sources=[SOURCE], batches=batches, cases=cases, guard=guard or Guard(),
                         register_ready=event, metrics=metrics, crash=crash)  # fmt: skip
    return chunks, crashed, metrics


async def test_sources_go_to_the_batch_agency_messages_to_their_cases_and_both_are_acked() -> None:
    batches, cases = Batches(), Cases()
    chunks, crashed, _ = router(batches, cases)
    chunk = {TP(SOURCE, 0): records(SOURCE, 0, range(5, 9)),
             TP(SOURCE, 3): records(SOURCE, 3, range(0, 2)),
             TP(AGENCY, 1): records(AGENCY, 1, range(40, 43))}  # fmt: skip
    handled = await chunks.handle(chunk)
    assert handled == {TP(SOURCE, 0): range(5, 9), TP(SOURCE, 3): range(0, 2),
                       TP(AGENCY, 1): range(40, 43)}  # fmt: skip
    assert [m.lineage for m in batches.seen[0]] == [
        *(f"{SOURCE}:0:{o}" for o in range(5, 9)), f"{SOURCE}:3:0", f"{SOURCE}:3:1"]  # fmt: skip
    assert [m.offset for m in cases.seen[0]] == [40, 41, 42] and not crashed
    assert chunks.last_offset == {(SOURCE, 0): 8, (SOURCE, 3): 1, (AGENCY, 1): 42}


async def test_a_failed_batch_acknowledges_nothing_and_stops_the_worker() -> None:
    batches, cases = Batches(ok=False), Cases()
    chunks, crashed, _ = router(batches, cases)
    chunk = {
        TP(SOURCE, 0): records(SOURCE, 0, range(3)),
        TP(AGENCY, 0): records(AGENCY, 0, range(1)),
    }
    assert await chunks.handle(chunk) is None
    # The cases ran beside the batch; none of their offsets moved either: the restart replays them.
    assert crashed == [batches.failure] and len(cases.seen) == 1


async def test_a_batch_whose_outputs_kafka_refused_acknowledges_nothing() -> None:
    error = ConnectionError("produce refused")

    class Refused(Batches):
        async def run(self, batch: list[Incoming]) -> bool:
            raise error

    chunks, crashed, _ = router(Refused(), Cases())
    assert await chunks.handle({TP(SOURCE, 0): records(SOURCE, 0, range(3))}) is None
    assert crashed == [error]


class Waiting:
    """A half that waits (as for Kafka's acknowledgements) until told, recording the order."""

    def __init__(self, name: str, log: list[str], go: asyncio.Event, ok: bool = True) -> None:
        self.name, self.log, self.go, self.ok = name, log, go, ok
        self.failure: BaseException | None = None if ok else RuntimeError(f"{name} failed")

    async def run(self, batch: list[Incoming]) -> bool:
        self.log.append(f"{self.name} sent")
        await self.go.wait()
        self.log.append(f"{self.name} done")
        if self.failure is not None and self.name == "cases":
            raise self.failure
        return self.ok


BOTH = {TP(SOURCE, 0): range(0, 2), TP(AGENCY, 0): range(0, 1)}


Started = tuple[asyncio.Future[Any], list[str], asyncio.Event, list[BaseException], HubMetrics,
                Waiting]  # fmt: skip


def both_waiting(cases_ok: bool = True) -> Started:
    """A chunk of both halves in the handler, each waiting for ``go`` once it has "sent"."""
    order: list[str] = []
    go = asyncio.Event()
    cases = Waiting("cases", order, go, ok=cases_ok)
    chunks, crashed, metrics = router(Waiting("batch", order, go), cases)  # type: ignore[arg-type]
    chunk = {tp: records(tp.topic, tp.partition, offsets) for tp, offsets in BOTH.items()}
    return asyncio.ensure_future(chunks.handle(chunk)), order, go, crashed, metrics, cases


async def test_the_cases_run_while_the_batch_waits_for_kafka_and_acks_wait_for_both() -> None:
    task, order, go, crashed, metrics, _ = both_waiting()
    await asyncio.sleep(0.01)
    # Run one after the other, the cases would not have begun while the batch waits.
    assert order == ["batch sent", "cases sent"] and not task.done()
    go.set()
    assert await asyncio.wait_for(task, 1) == BOTH
    assert not crashed
    turns = metrics.stage_seconds.labels("chunk")
    assert turns._sum.get() >= 0.01, "the turn is timed whole, waits included"


async def test_cases_that_fail_beside_a_stored_batch_acknowledge_nothing_once_both_ended() -> None:
    task, order, go, crashed, _, cases = both_waiting(cases_ok=False)
    await asyncio.sleep(0.01)
    go.set()
    assert await asyncio.wait_for(task, 1) is None
    assert crashed == [cases.failure] and "batch done" in order, "the batch was let finish"


async def test_a_case_failure_acknowledges_nothing_not_even_the_stored_sources() -> None:
    error = ConnectionError("broker gone")
    chunks, crashed, _ = router(Batches(), Cases(error))
    chunk = {
        TP(SOURCE, 0): records(SOURCE, 0, range(3)),
        TP(AGENCY, 0): records(AGENCY, 0, range(1)),
    }
    assert await chunks.handle(chunk) is None
    assert crashed == [error]


async def test_records_the_consumer_skipped_are_read_back_and_acknowledged_with_the_chunk() -> None:
    skipped = records(SOURCE, 2, range(10, 12))
    batches = Batches()
    chunks, _, metrics = router(batches, Cases(), Guard({(SOURCE, 2): skipped}))
    handled = await chunks.handle({TP(SOURCE, 2): records(SOURCE, 2, range(12, 15))})
    assert handled == {TP(SOURCE, 2): range(10, 15)}
    assert [m.offset for m in batches.seen[0]] == [10, 11, 12, 13, 14]
    assert metrics.offsets_reread.labels(SOURCE)._value.get() == 2


async def test_nothing_is_handled_before_the_register_caught_up() -> None:
    batches = Batches()
    chunks, _, _ = router(batches, Cases(), ready=False)
    task = asyncio.ensure_future(chunks.handle({TP(SOURCE, 0): records(SOURCE, 0, range(1))}))
    await asyncio.sleep(0.05)
    assert not task.done() and not batches.seen
    chunks.register_ready.set()
    assert await asyncio.wait_for(task, 1) == {TP(SOURCE, 0): range(0, 1)}


async def test_an_empty_chunk_acknowledges_nothing_and_runs_nothing() -> None:
    batches, cases = Batches(), Cases()
    chunks, _, _ = router(batches, cases)
    assert await chunks.handle({}) == {}
    assert not batches.seen and not cases.seen


class Consumer:
    """A consumer whose ``revoked`` partitions are gone by the time their high water is read
    (its thread rebalanced between ``assignment()`` and ``highwater()``)."""

    def __init__(self, high: dict[TP, int], revoked: set[TP]) -> None:
        self.high, self.revoked = high, revoked

    def assignment(self) -> set[Any]:
        return set(self.high)

    def highwater(self, tp: Any) -> int | None:
        assert tp not in self.revoked, "Partition is not assigned"  # what aiokafka does
        return self.high[tp]


async def test_lag_is_reported_and_a_partition_revoked_meanwhile_is_skipped_not_fatal() -> None:
    chunks, crashed, metrics = router(Batches(), Cases())
    kept, gone, unread = TP(SOURCE, 0), TP(SOURCE, 1), TP(SOURCE, 2)
    assert await chunks.handle({kept: records(SOURCE, 0, range(10, 20))}) is not None
    assert await chunks.handle({gone: records(SOURCE, 1, range(0, 5))}) is not None
    chunks.report_lag(Consumer({kept: 50, gone: 9, unread: 7}, revoked={gone}))
    lag = metrics.consumer_lag.labels
    assert lag(SOURCE, "0")._value.get() == 50 - 19 - 1
    assert lag(SOURCE, "1")._value.get() == 0  # never set: skipped, not raised
    assert not crashed
