"""The worker's register cache: one query per batch for what it has not seen lately, bounded,
expiring, and refreshed by the feed only for entries it holds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from hub.bench.feed import Record  # what aiokafka's consumer gives the feed, as far as it reads
from hub.domain.records import PopulationRecord
from hub.metrics import HubMetrics
from hub.sim.traffic import Traffic
from hub.stream.register import RegisterCache
from hub.wire.codec import Codec, SchemaVersion

CODEC = Codec()


PEOPLE = Traffic(CODEC, seed=3, provinces=1, population=30, now=datetime.now(UTC)).people


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def encoded(p: PopulationRecord) -> bytes:
    return CODEC.encode(PopulationRecord.SCHEMA, p.to_avro())


def test_one_query_per_batch_for_the_ids_not_cached() -> None:
    store = {p.personal_id: encoded(p) for p in PEOPLE[:10]}
    asked: list[list[str]] = []

    def query(ids: list[str]) -> dict[str, bytes]:
        asked.append(ids)
        return {i: store[i] for i in ids if i in store}

    cache = RegisterCache(CODEC, max_entries=100, ttl_s=30, clock=Clock())
    ids = [p.personal_id for p in PEOPLE[:5]] + ["000000000000"]
    got = cache.fetch(ids + ids, query)
    assert set(got) == {p.personal_id for p in PEOPLE[:5]}
    assert got[PEOPLE[0].personal_id] == PEOPLE[0]
    assert asked == [ids], "one query, each id once"
    assert cache.fetch(ids, query) == got and len(asked) == 1, "all cached, the unknown too"
    cache.fetch([PEOPLE[6].personal_id, PEOPLE[0].personal_id], query)
    assert asked[-1] == [PEOPLE[6].personal_id]


def test_entries_expire_and_the_cache_is_bounded() -> None:
    clock = Clock()
    cache = RegisterCache(CODEC, max_entries=3, ttl_s=30, clock=clock)
    calls: list[list[str]] = []

    def query(ids: list[str]) -> dict[str, bytes]:
        calls.append(ids)
        return {}

    cache.fetch(["a", "b", "c", "d"], query)
    assert len(cache) == 3
    clock.now = 31
    cache.fetch(["d"], query)
    assert calls[-1] == ["d"], "expired: asked again"


def test_the_feed_refreshes_only_what_is_cached_and_own_registrations_are_seen() -> None:
    cache = RegisterCache(CODEC, max_entries=10, ttl_s=30, clock=Clock())
    first, other = PEOPLE[0], PEOPLE[1]
    cache.fetch([first.personal_id], lambda ids: {first.personal_id: encoded(first)})
    dead = first.model_copy(update={"deceased": True})
    cache.refresh(first.personal_id, dead)
    cache.refresh(other.personal_id, other)
    assert len(cache) == 1, "the feed does not fill the cache with the whole register"
    assert cache.fetch([first.personal_id], lambda ids: {}) == {first.personal_id: dead}
    cache.put(other.personal_id, other)  # a registration this worker made
    assert cache.fetch([other.personal_id], lambda ids: {}) == {other.personal_id: other}


def test_an_unreadable_entry_is_skipped_not_raised() -> None:
    cache = RegisterCache(CODEC, max_entries=10, ttl_s=30, clock=Clock())
    assert cache.fetch(["x"], lambda ids: {"x": b"not avro"}) == {}


def test_a_stored_record_loads_without_validation_as_the_feed_validated_it() -> None:
    cache = RegisterCache(CODEC, max_entries=100, ttl_s=30, clock=Clock())
    for person in PEOPLE:
        loaded = cache.load(encoded(person))
        assert loaded == cache.decode(encoded(person)) == person
        assert loaded is not None and loaded.sex is person.sex  # the enum, not its text


class CountingCodec(Codec):
    """The codec, counting what it decodes."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def decode(self, data: bytes,
               reader: SchemaVersion | None = None) -> tuple[str, dict[str, Any]]:  # fmt: skip
        self.decoded += 1
        return super().decode(data, reader)


def test_two_workers_feeds_write_a_range_once_and_both_caches_hear_of_it(tmp_path: Path) -> None:
    """Every worker reads the whole register topic; the first feed to reach a range decodes and
    writes it, the other finds the store there: it decodes nothing of that range, and its cache
    forgets those people so that its next lookup reads what the store holds
    (hub/stream/register.py ``RegisterFeed.apply``, hub/store/sql.py ``apply_register``)."""
    from prometheus_client import CollectorRegistry

    from hub.store.sql import open_store
    from hub.stream.register import RegisterFeed

    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    topic = "ref.population.v1"
    records = [Record(p.personal_id.encode(), encoded(p), i % 2, i // 2)
               for i, p in enumerate(PEOPLE[:20])]  # fmt: skip
    codecs = [CountingCodec(), CountingCodec()]
    caches = [RegisterCache(c, max_entries=100, ttl_s=30, clock=Clock()) for c in codecs]
    first, second = (RegisterFeed(None, topic, lambda: store, c, cache,
                                  metrics=HubMetrics.create(CollectorRegistry()))
                     for c, cache in zip(codecs, caches, strict=True))  # fmt: skip
    ids = [p.personal_id for p in PEOPLE[:12]]
    old = PEOPLE[0].model_copy(update={"full_name": "Tên Cũ"})
    caches[1].put(old.personal_id, old)  # the second worker looked this person up before

    done = first.apply(records[:12])
    assert [pid for pid, _ in done.refresh] == ids and done.stale == []
    assert codecs[0].decoded == 12
    skipped = second.apply(records[:12])
    assert skipped.refresh == [] and skipped.stale == ids
    assert codecs[1].decoded == 0, "a range the store holds is not decoded again"
    assert (first.applied, second.applied) == (12, 0)
    counted = cast(HubMetrics, second.metrics).register_records.labels
    assert counted("already")._value.get() == 12

    for pid in skipped.stale:  # what the feed's loop does with it
        caches[1].drop(pid)
    assert len(caches[1]) == 0
    loaded = caches[1].fetch([old.personal_id], store.register_records)
    assert loaded == {old.personal_id: PEOPLE[0]}, "the next lookup reads the stored record"

    rest = second.apply(records)
    assert second.applied == 8 and counted("applied")._value.get() == 8, "only the rest written"
    assert codecs[1].decoded == 8 + 1, "only the rest decoded (and the one lookup)"
    assert [pid for pid, _ in rest.refresh] == [p.personal_id for p in PEOPLE[12:20]]
    assert store.register_offsets(topic) == {0: 10, 1: 10}
    assert len(store.register_records([p.personal_id for p in PEOPLE[:20]])) == 20
    store.close()


def test_a_range_another_feed_reached_meanwhile_is_not_written_twice(tmp_path: Path) -> None:
    """Between a feed's read of where the store is and its write, another feed may write the
    same range: the store's own check (under the lock of the partition's position) skips it."""
    from hub.store.sql import open_store
    from hub.stream.register import RegisterFeed

    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    topic = "ref.population.v1"
    records = [Record(p.personal_id.encode(), encoded(p), 0, i) for i, p in enumerate(PEOPLE[:6])]
    cache = RegisterCache(CODEC, max_entries=100, ttl_s=30, clock=Clock())
    other = RegisterFeed(None, topic, lambda: store, CODEC, cache)

    class Racing:  # the store, with the other feed writing just after the position was read
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def register_offsets(self, topic: str) -> dict[int, int]:
            done = store.register_offsets(topic)
            other.apply(records)
            return done

    late = RegisterFeed(None, topic, lambda: cast(Any, Racing()), CODEC, cache)
    got = late.apply(records)
    assert len(got.refresh) == 6, "decoded: the store was not there when asked"
    assert (other.applied, late.applied) == (6, 0)
    store.close()
