"""What the register feed costs each worker (issue 15, item 3): microseconds of one core a
``ref.population.v1`` record, for the feed that writes it to the store and for every other
worker's feed, which reads the same record and finds the store already there.

    python -m hub.bench.feed [--people N] [--runs R]

Two :class:`~hub.stream.register.RegisterFeed` objects share one SQLite store, as two workers
do; each is handed the same records (the simulator's people, encoded as the worker publishes
them, over 12 partitions) in batches as the feed fetches them. No Kafka: the feed's own work.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hub.domain.records import PopulationRecord
from hub.domain.topics import POPULATION_TOPIC
from hub.sim.traffic import Traffic
from hub.store.sql import open_store
from hub.stream.register import RegisterCache, RegisterFeed
from hub.wire.codec import Codec

PARTITIONS = 12
FETCH = 5000  # records a fetch of the feed brings at most (RegisterFeed's batch)


@dataclass(frozen=True)
class Record:
    """What aiokafka's consumer hands the feed, as far as the feed reads it."""

    key: bytes
    value: bytes | None
    partition: int
    offset: int


def records(codec: Codec, people: int) -> list[Record]:
    made = Traffic(codec, seed=3, provinces=3, population=people, now=datetime.now(UTC)).people
    return [Record(p.personal_id.encode(), codec.encode(PopulationRecord.SCHEMA, p.to_avro()),
                   i % PARTITIONS, i // PARTITIONS) for i, p in enumerate(made)]  # fmt: skip


def run_once(codec: Codec, feed_records: list[Record]) -> list[tuple[float, int]]:
    """Per feed, µs of CPU a record and the records it wrote: the first feed (it writes them
    all), the second (the store is there: none)."""
    with tempfile.TemporaryDirectory() as home:
        store = open_store(f"sqlite:///{Path(home) / 'store.sqlite3'}")
        try:
            costs = []
            for _ in range(2):
                cache = RegisterCache(codec, max_entries=100_000, ttl_s=30)
                feed = RegisterFeed("", POPULATION_TOPIC, lambda: store, codec, cache)  # no Kafka
                start = time.process_time()
                for i in range(0, len(feed_records), FETCH):
                    feed.apply(feed_records[i : i + FETCH])
                costs.append(((time.process_time() - start) * 1e6 / len(feed_records),
                              feed.applied))  # fmt: skip
        finally:
            store.close()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=20_000, help="register records to feed")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    codec = Codec()
    feed_records = records(codec, args.people)
    runs = [run_once(codec, feed_records) for _ in range(args.runs)]
    first = statistics.median(r[0][0] for r in runs)
    other = statistics.median(r[1][0] for r in runs)
    print(f"register feed, {len(feed_records):,} records, µs of one core a record (median of "
          f"{args.runs}): the feed that writes them {first:.1f}; another worker's feed "
          f"{other:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
