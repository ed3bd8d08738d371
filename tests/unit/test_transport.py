"""The hubkafka:// transport against the faust it is installed with: what it overrides and the
bookkeeping it writes into must be where it expects them (hub/kafka/transport.py). An upgrade
of faust that moves them fails here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import by_url
from faust.types import TP

from hub.kafka.transport import Consumer, Transport, take_in_chunks, whole

SOURCE = "src.civil.birth.v1"
CHANGELOG = "hub-cases-changelog"


def record(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, timestamp=1000,
                           timestamp_type=0, headers=[], key=b"k", value=b"v", checksum=None,
                           serialized_key_size=1, serialized_value_size=1)  # fmt: skip


def app_with(broker: str = "hubkafka://127.0.0.1:9092") -> faust.App:
    return faust.App("transport-test", broker=broker)


def test_faust_finds_the_transport_by_its_url_scheme() -> None:
    assert by_url("hubkafka://127.0.0.1:9092") is Transport
    assert isinstance(app_with().consumer, Consumer)


def test_a_plain_kafka_app_cannot_take_chunks() -> None:
    app = app_with("kafka://127.0.0.1:9092")

    async def handler(chunk: Any) -> None:
        return None

    with pytest.raises(TypeError, match="hubkafka://"):
        take_in_chunks(app, [SOURCE], handler)


def test_the_overridden_drain_is_fausts_per_message_loop() -> None:
    """The method this transport replaces still exists, as a coroutine taking the fetcher."""
    assert asyncio.iscoroutinefunction(FaustConsumer._drain_messages)
    assert asyncio.iscoroutinefunction(FaustConsumer._wait_next_records)
    assert asyncio.iscoroutinefunction(FaustConsumer.perform_seek)


def test_an_acknowledged_range_is_what_faust_commits_next() -> None:
    consumer: Any = app_with().consumer
    tp = TP(SOURCE, 3)
    assert consumer.acknowledge_range(tp, range(40, 50)) == 10
    assert consumer._new_offset(tp) == 50, "faust's commit reads the acked offsets we wrote"
    consumer._committed_offset[tp] = 55
    assert consumer.acknowledge_range(tp, range(50, 60)) == 5, "below the committed: ignored"
    assert consumer.acknowledge_range(tp, range(55, 60)) == 0, "each offset once"


class Drain:
    """A hub consumer whose fetches are given, its conductor callback recorded."""

    def __init__(self, fetches: list[Mapping[TP, Sequence[Any]]]) -> None:
        self.app = app_with()
        self.consumer: Any = self.app.consumer
        self.fetches = fetches
        self.delivered: list[tuple[str, int]] = []
        self.in_flight_seen: list[int] = []
        self.fetcher = SimpleNamespace(_stopped=asyncio.Event())

        async def next_records(timeout: float) -> tuple[Any, Any]:
            if not self.fetches:
                self.fetcher._stopped.set()
                return {}, None
            return self.fetches.pop(0), None

        async def callback(message: Any) -> None:
            self.delivered.append((message.topic, message.offset))

        self.consumer._wait_next_records = next_records
        self.consumer.callback = callback

    def take(self, handled: Any) -> list[dict[TP, list[int]]]:
        chunks: list[dict[TP, list[int]]] = []

        async def handler(chunk: Any) -> Any:
            self.in_flight_seen.append(len(self.consumer._unacked_messages))
            chunks.append({tp: [r.offset for r in recs] for tp, recs in chunk.items()})
            return handled(chunk)

        self.consumer.chunk_topics = frozenset({SOURCE})
        self.consumer.chunk_handler = handler
        return chunks

    async def run(self) -> None:
        await self.consumer._drain_messages(self.fetcher)


async def test_a_fetch_goes_to_the_handler_whole_and_the_rest_to_faust_one_by_one() -> None:
    source, changelog = TP(SOURCE, 0), TP(CHANGELOG, 1)
    drain = Drain([{source: [record(SOURCE, 0, o) for o in range(10, 15)],
                    changelog: [record(CHANGELOG, 1, o) for o in range(3)]}])  # fmt: skip
    chunks = drain.take(whole)
    await drain.run()
    assert chunks == [{source: [10, 11, 12, 13, 14]}], "one call with the whole fetch"
    assert drain.delivered == [(CHANGELOG, 0), (CHANGELOG, 1), (CHANGELOG, 2)]
    assert drain.in_flight_seen == [1], "a chunk in the handler counts as unacknowledged"
    assert not drain.consumer._unacked_messages, "and no longer once handled"
    assert drain.consumer._new_offset(source) == 15
    assert drain.consumer._read_offset[source] == 15


async def test_a_failed_chunk_acknowledges_nothing_and_nothing_after_it_is_handled() -> None:
    source = TP(SOURCE, 2)
    drain = Drain([{source: [record(SOURCE, 2, o) for o in range(5)]},
                   {source: [record(SOURCE, 2, o) for o in range(5, 9)]}])  # fmt: skip
    chunks = drain.take(lambda chunk: None)
    await drain.run()
    assert chunks == [{source: [0, 1, 2, 3, 4]}], "the drain stops at the failed chunk"
    assert drain.consumer._new_offset(source) is None
    assert not drain.consumer._unacked_messages


async def test_records_below_the_read_offset_are_not_handed_again() -> None:
    source = TP(SOURCE, 0)
    drain = Drain([{source: [record(SOURCE, 0, o) for o in range(3)]},
                   {source: [record(SOURCE, 0, o) for o in range(2, 6)]}])  # fmt: skip
    chunks = drain.take(whole)
    await drain.run()
    assert chunks == [{source: [0, 1, 2]}, {source: [3, 4, 5]}]


async def test_a_range_read_back_before_the_chunk_is_acknowledged_too() -> None:
    source = TP(SOURCE, 1)
    drain = Drain([{source: [record(SOURCE, 1, o) for o in range(7, 9)]}])
    drain.take(lambda chunk: {source: range(4, 9)})  # the handler read 4..6 back
    await drain.run()
    assert drain.consumer._acked[source] == [4, 5, 6, 7, 8]


async def test_a_fetch_that_arrives_once_a_rebalance_stopped_the_flow_is_dropped_and_sought_back(
) -> None:  # fmt: skip
    source = TP(SOURCE, 0)
    drain = Drain([{source: [record(SOURCE, 0, o) for o in range(3)]}])
    chunks = drain.take(lambda chunk: {source: range(0, 3)})
    sought: list[bool] = []

    async def perform_seek() -> None:
        sought.append(True)

    drain.consumer.perform_seek = perform_seek
    drain.consumer.stop_flow()  # what faust does when partitions are revoked
    await drain.run()
    assert chunks == [], "nothing of it reaches the handler"
    assert sought == [True], "read again from the committed offsets"
    assert drain.consumer._new_offset(source) is None


async def test_a_seek_back_that_meets_another_rebalance_leaves_it_to_that_one_and_goes_on(
) -> None:  # fmt: skip
    """aiokafka raises when the assignment changes during the seek (seen in CI: a partition
    revoked meanwhile); the worker must not stop — the new rebalance's recovery seeks again."""
    from aiokafka.errors import IllegalStateError

    source = TP(SOURCE, 0)
    drain = Drain([{source: [record(SOURCE, 0, o) for o in range(3)]},
                   {source: [record(SOURCE, 0, o) for o in range(3)]}])  # fmt: skip
    chunks = drain.take(lambda chunk: {source: range(0, 3)})

    async def perform_seek() -> None:
        drain.consumer.resume_flow()  # the next rebalance's recovery resumes the flow
        raise IllegalStateError(f"No current assignment for partition {source}")

    drain.consumer.perform_seek = perform_seek
    drain.consumer.stop_flow()
    await drain.run()  # does not raise
    assert chunks == [{source: [0, 1, 2]}], "the fetch after it is handled"


async def test_a_revocation_during_the_chunk_lets_it_finish_and_acknowledges_it() -> None:
    """faust stops the flow, then waits for wait_empty before it commits: the chunk in flight
    completes and its offsets are in the bookkeeping that commit reads."""
    source = TP(SOURCE, 4)
    drain = Drain([{source: [record(SOURCE, 4, o) for o in range(20, 25)]}])

    def revoked_meanwhile(chunk: Any) -> Any:
        drain.consumer.stop_flow()
        drain.app.consumer_generation_id += 1  # the next generation is being formed
        return {source: range(20, 25)}

    drain.take(revoked_meanwhile)
    await drain.run()
    assert drain.consumer._new_offset(source) == 25
    assert drain.consumer._read_offset[source] is None, "the new generation seeks afresh"


async def test_a_jump_between_fetches_is_never_acknowledged_for_the_handler() -> None:
    """faust's own drain counts offsets it jumped over as acknowledged ("gap filling"); this
    one acknowledges only what the handler returns, so offsets 5-7, never handled, hold the
    commit at 5 (the offset guard's read-back is what may cover them)."""
    source = TP(SOURCE, 4)
    drain = Drain([{source: [record(SOURCE, 4, o) for o in range(5)]},
                   {source: [record(SOURCE, 4, o) for o in range(8, 10)]}])  # fmt: skip
    chunks = drain.take(whole)
    await drain.run()
    assert chunks == [{source: [0, 1, 2, 3, 4]}, {source: [8, 9]}]
    assert drain.consumer._new_offset(source) == 5


async def test_the_drain_goes_on_while_offsets_are_committed() -> None:
    """Every ``commit_every`` acknowledged offsets a commit starts, and the next chunk does not
    wait for it (a flush of the producer and a round trip to the group coordinator)."""
    source = TP(SOURCE, 0)
    drain = Drain([{source: [record(SOURCE, 0, o) for o in range(i, i + 5)]}
                   for i in range(0, 30, 5)])  # fmt: skip
    drain.consumer._commit_every = 10
    commits: list[int] = []
    release = asyncio.Event()

    async def commit(*args: Any, **kwargs: Any) -> bool:
        commits.append(len(chunks))
        await release.wait()  # a coordinator that answers only when told
        return True

    drain.consumer.commit = commit
    chunks = drain.take(whole)
    await asyncio.wait_for(drain.run(), 10)  # a drain awaiting its commit would hang here
    assert len(chunks) == 6, "every chunk handled while the first commit still waits"
    assert commits == [2], "one commit at a time: none started again while it runs"
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert drain.consumer._background_commit.done()
    assert drain.consumer._new_offset(source) == 30, "what the next commit will write"


def test_faust_runs_one_commit_at_a_time() -> None:
    """A commit called while another runs waits for it (what lets the drain commit in the
    background beside faust's periodic commit)."""
    import inspect

    assert "maybe_wait_for_commit_to_finish" in inspect.getsource(FaustConsumer.commit)


class TopUp:
    """What the fetcher brought while the handler was busy, handed out by ``_fetch_more``."""

    def __init__(self, drain: Drain, more: list[Mapping[TP, Sequence[Any]]]) -> None:
        self.more = more
        self.asked: list[int | None] = []

        async def fetch_more(active: Any, timeout: float, max_records: int | None) -> Any:
            self.asked.append(max_records)
            return self.more.pop(0) if self.more else {}

        drain.consumer._fetch_more = fetch_more


async def test_a_fetch_after_a_busy_turn_is_topped_up_with_what_came_meanwhile() -> None:
    """aiokafka holds one fetch a partition until it is taken: after a long turn in the handler
    that fetch is as old as the turn. What the next fetch brings joins it in the same chunk, each
    partition in offset order, and all of it is acknowledged."""
    a, b = TP(SOURCE, 0), TP(SOURCE, 1)
    drain = Drain([{a: [record(SOURCE, 0, o) for o in range(3)]},
                   {a: [record(SOURCE, 0, o) for o in range(3, 5)]}])  # fmt: skip
    drain.app.conf.broker_max_poll_records = 10
    drain.consumer.top_up_s = 1e-9  # every turn counts as long
    top_up = TopUp(drain, [{a: [record(SOURCE, 0, o) for o in range(5, 7)],
                            b: [record(SOURCE, 1, o) for o in range(2)]}])  # fmt: skip
    chunks = drain.take(whole)
    await drain.run()
    assert chunks == [{a: [0, 1, 2]}, {a: [3, 4, 5, 6], b: [0, 1]}], (
        "the first fetch had no turn before it; the second is topped up"
    )
    assert top_up.asked == [8], "up to the fetch's limit: 10 less the 2 taken"
    assert drain.consumer._new_offset(a) == 7
    assert drain.consumer._new_offset(b) == 2


async def test_without_a_fetch_limit_the_top_up_asks_for_no_limit() -> None:
    a = TP(SOURCE, 0)
    drain = Drain([{a: [record(SOURCE, 0, o) for o in range(3)]},
                   {a: [record(SOURCE, 0, o) for o in range(3, 5)]}])  # fmt: skip
    drain.app.conf.broker_max_poll_records = None
    drain.consumer.top_up_s = 1e-9
    top_up = TopUp(drain, [])
    drain.take(whole)
    await drain.run()
    assert top_up.asked == [None], "never a negative limit (what aiokafka asserts against)"


async def test_a_full_fetch_or_a_quick_turn_is_not_topped_up() -> None:
    a = TP(SOURCE, 0)
    full = Drain([{a: [record(SOURCE, 0, o) for o in range(3)]},
                  {a: [record(SOURCE, 0, o) for o in range(3, 6)]}])  # fmt: skip
    full.app.conf.broker_max_poll_records = 3
    full.consumer.top_up_s = 1e-9
    asked_full = TopUp(full, [{a: [record(SOURCE, 0, 6)]}]).asked
    full.take(whole)
    await full.run()
    assert asked_full == [], "a full fetch is a backlog: nothing to wait for"

    quick = Drain([{a: [record(SOURCE, 0, o) for o in range(3)]},
                   {a: [record(SOURCE, 0, o) for o in range(3, 5)]}])  # fmt: skip
    quick.consumer.top_up_s = 60.0
    asked_quick = TopUp(quick, [{a: [record(SOURCE, 0, 5)]}]).asked
    chunks = quick.take(whole)
    await quick.run()
    assert asked_quick == [], "the fetch is fresh: no wait added"
    assert chunks == [{a: [0, 1, 2]}, {a: [3, 4]}]


def test_the_top_up_calls_fausts_fetch_in_the_consumer_thread_as_getmany_does() -> None:
    """``_fetch_more`` calls what faust's own ``getmany`` calls, with a limit of its own."""
    import inspect

    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    params = list(inspect.signature(AIOKafkaConsumerThread._fetch_records).parameters)
    assert params == ["self", "consumer", "active_partitions", "timeout", "max_records"]
    assert "self._fetch_records" in inspect.getsource(AIOKafkaConsumerThread.getmany)
    assert asyncio.iscoroutinefunction(AIOKafkaConsumerThread.call_thread)
    assert callable(AIOKafkaConsumerThread._ensure_consumer)


async def test_a_rebalance_during_the_top_up_drops_the_whole_fetch_and_seeks_back() -> None:
    """The top-up waits on the consumer's thread, where a rebalance can begin and even end: the
    fetch then belongs to a generation that is over, and none of it is handled (its partitions
    may be another worker's now); the consumer reads again from the committed offsets."""
    a = TP(SOURCE, 0)
    drain = Drain([{a: [record(SOURCE, 0, o) for o in range(3)]},
                   {a: [record(SOURCE, 0, o) for o in range(3, 5)]}])  # fmt: skip
    drain.consumer.top_up_s = 1e-9
    sought: list[bool] = []

    async def perform_seek() -> None:
        sought.append(True)

    async def rebalanced_meanwhile(active: Any, timeout: float, max_records: int | None) -> Any:
        drain.app.consumer_generation_id += 1  # revoked, reassigned, the flow resumed
        return {a: [record(SOURCE, 0, 5)]}

    drain.consumer.perform_seek = perform_seek
    drain.consumer._fetch_more = rebalanced_meanwhile
    chunks = drain.take(whole)
    await drain.run()
    assert chunks == [{a: [0, 1, 2]}], "the fetch that straddled the rebalance is not handled"
    assert sought == [True]
    assert drain.consumer._new_offset(a) == 3


def test_the_top_up_is_the_workers_setting_and_zero_turns_it_off() -> None:
    async def handler(chunk: Any) -> None:
        return None

    on, off = app_with(), app_with()
    take_in_chunks(on, [SOURCE], handler, top_up_s=0.02)
    take_in_chunks(off, [SOURCE], handler, top_up_s=0)
    consumer: Any = on.consumer
    assert consumer.top_up_s == 0.02
    assert cast(Any, off.consumer).top_up_s == 0


async def test_a_top_up_of_zero_never_tops_a_fetch_up() -> None:
    a = TP(SOURCE, 0)
    drain = Drain([{a: [record(SOURCE, 0, o) for o in range(3)]},
                   {a: [record(SOURCE, 0, o) for o in range(3, 5)]}])  # fmt: skip
    drain.app.conf.broker_max_poll_records = 10
    drain.consumer.top_up_s = 0.0
    asked = TopUp(drain, [{a: [record(SOURCE, 0, 5)]}]).asked

    async def handler(chunk: Any) -> Any:
        await asyncio.sleep(0.05)  # every turn long
        return whole(chunk)

    drain.consumer.chunk_topics = frozenset({SOURCE})
    drain.consumer.chunk_handler = handler
    await drain.run()
    assert asked == [], "0 turns the top-up off, however long the turns"


@pytest.mark.parametrize("idle_between", [False, True])
async def test_only_a_turn_in_the_handler_counts_not_a_wait_for_records(idle_between: bool) -> None:
    """A long turn tops the next fetch up; a fetch after an empty wait (an idle worker: nothing
    arrived within the poll) is fresh, and is handed over at once."""
    a = TP(SOURCE, 0)
    first = {a: [record(SOURCE, 0, o) for o in range(3)]}
    second = {a: [record(SOURCE, 0, o) for o in range(3, 5)]}
    drain = Drain([first, {}, second] if idle_between else [first, second])
    drain.consumer.top_up_s = 0.05
    asked = TopUp(drain, []).asked

    drain.app.conf.broker_max_poll_records = 10
    turns: list[list[int]] = []

    async def handler(chunk: Any) -> Any:
        turns.append([r.offset for r in chunk[a]])
        if len(turns) == 1:
            await asyncio.sleep(0.1)  # a long first turn
        return whole(chunk)

    drain.consumer.chunk_topics = frozenset({SOURCE})
    drain.consumer.chunk_handler = handler
    await drain.run()
    assert turns == [[0, 1, 2], [3, 4]]
    assert asked == ([] if idle_between else [8]), "topped up only right after the turn"
