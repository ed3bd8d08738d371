"""Kafka's default partitioner hash a key: aiokafka's pure-Python murmur2 one key at a time
against :func:`hub.kafka.partitioner.key_hashes` over a batch's keys, in the same run.

Run: ``python -m hub.bench.partitioner [--keys 500] [--rounds 200]`` (docs/BENCHMARKS.md).
The keys are what the worker's outputs carry: case ids (UUID text, 36 bytes) and personal ids
(12 digits).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from functools import partial

from hub.kafka.partitioner import key_hash, key_hashes


def per_key(run: Callable[[], object], keys: int, rounds: int) -> float:
    """µs a key: the median over 5 timings of ``rounds`` calls of ``run``."""
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(rounds):
            run()
        timings.append((time.perf_counter() - began) * 1e6 / (rounds * keys))
    return statistics.median(timings)


def one_at_a_time(keys: list[bytes]) -> list[int]:
    return [key_hash(k) for k in keys]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=500, help="keys a batch")
    parser.add_argument("--rounds", type=int, default=200, help="batches a timing")
    args = parser.parse_args()
    print("| keys | aiokafka murmur2, one at a time | key_hashes, the batch | ratio |")
    print("|---|---:|---:|---:|")
    kinds = {"case ids (36 B)": [str(uuid.uuid4()).encode() for _ in range(args.keys)],
             "personal ids (12 B)": [b"%012d" % (79_000_000_000 + n * 7919)
                                     for n in range(args.keys)]}  # fmt: skip
    for label, keys in kinds.items():
        if key_hashes(keys) != one_at_a_time(keys):
            raise SystemExit(f"{label}: the batch's hashes differ from aiokafka's murmur2")
        one = per_key(partial(one_at_a_time, keys), len(keys), args.rounds)
        batch = per_key(partial(key_hashes, keys), len(keys), args.rounds)
        print(f"| {label} | {one:.2f} µs | {batch:.2f} µs | {one / batch:.1f}× |")


if __name__ == "__main__":
    main()
