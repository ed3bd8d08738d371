"""Kafka's default partitioner for a whole batch of keys at once.

Kafka's producers (the Java client's ``BuiltInPartitioner``, aiokafka's ``DefaultPartitioner``)
put a keyed message on partition ``toPositive(murmur2(key)) % partitions``. aiokafka computes
murmur2 in pure Python, ~7 µs for a 36-byte case id: a few percent of the worker's batch path,
where every output is keyed and the keys of a batch are known together. :func:`key_hashes`
computes the same hash for all of them in numpy's unsigned 32-bit arithmetic (which wraps
modulo 2³² exactly as the algorithm does), one column of 4-byte words at a time across the
keys of one length: ~0.25 µs a key over a batch of 500 (``python -m hub.bench.partitioner``).
Few keys of a length go through aiokafka's own function, which is also the tests' oracle
(tests/unit/test_partitioner.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from aiokafka.partitioner import murmur2

SEED = 0x9747B28C
M = np.uint32(0x5BD1E995)
POSITIVE = 0x7FFFFFFF  # Java's Utils.toPositive
# Below this many keys of one length, numpy's fixed cost per operation outweighs the gain.
VECTOR_FROM = 8


def key_hash(key: bytes) -> int:
    """Kafka's default partitioner before the modulo (Java's ``Utils.toPositive(murmur2)``)."""
    return int(murmur2(key)) & POSITIVE


def key_hashes(keys: Sequence[bytes]) -> list[int]:
    """:func:`key_hash` of each of ``keys``, in their order."""
    hashes = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    for length, where in by_length.items():
        if length == 0 or len(where) < VECTOR_FROM:
            for i in where:
                hashes[i] = key_hash(keys[i])
            continue
        for i, h in zip(where, _murmur2(b"".join([keys[i] for i in where]), length), strict=True):
            hashes[i] = h
    return hashes


def _murmur2(joined: bytes, length: int) -> list[int]:
    """murmur2 (made positive) of each ``length``-byte key of ``joined``, the keys end to end."""
    raw = np.frombuffer(joined, dtype=np.uint8).reshape(-1, length)
    h = np.full(raw.shape[0], (SEED ^ length) & 0xFFFFFFFF, dtype=np.uint32)
    whole = length >> 2
    if whole:
        words = np.ascontiguousarray(raw[:, : whole * 4]).view("<u4")  # little-endian, as Java
        for j in range(whole):
            k = words[:, j] * M
            k ^= k >> 24
            k *= M
            h *= M
            h ^= k
    tail = raw[:, whole * 4 :].astype(np.uint32)
    rest = length & 3
    if rest >= 3:
        h ^= tail[:, 2] << 16
    if rest >= 2:
        h ^= tail[:, 1] << 8
    if rest >= 1:
        h ^= tail[:, 0]
        h *= M
    h ^= h >> 13
    h *= M
    h ^= h >> 15
    h &= POSITIVE
    hashes: list[int] = h.tolist()
    return hashes
