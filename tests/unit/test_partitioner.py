"""The batch partitioner gives every key the hash Kafka's default partitioner gives it: aiokafka's
own murmur2 (a port of the Java client's ``Utils.murmur2``) is the oracle, over keys of every
length and in groups large enough for the vectorised path."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.kafka.partitioner import VECTOR_FROM, key_hashes


def oracle(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=70), max_size=60), st.integers(1, 70))
def test_any_keys_hash_as_kafka_hashes_them(keys: list[bytes], length: int) -> None:
    # Keys of one length in a group large enough for the vectorised path, mixed with others.
    same = [bytes((i * 7 + j) % 256 for j in range(length)) for i in range(VECTOR_FROM + 3)]
    mixed = [k for pair in zip(keys, same, strict=False) for k in pair] + keys + same
    assert key_hashes(mixed) == [oracle(k) for k in mixed]


def test_every_length_and_tail_of_a_batch_of_ids_hashes_as_kafka() -> None:
    keys = [str(uuid.uuid4()).encode()[:n] for n in range(37) for _ in range(VECTOR_FROM * 2)]
    assert key_hashes(keys) == [oracle(k) for k in keys]


def test_high_bytes_and_the_sign_bit_are_handled_as_java_does() -> None:
    """Bytes ≥ 0x80 are negative in Java; a hash with the top bit set is made positive."""
    keys = [bytes([0xFF - i, 0x80 + i, i, 0xFE] * (i % 5 + 1)) for i in range(64)]
    hashes = key_hashes(keys)
    assert hashes == [oracle(k) for k in keys]
    assert any(int(murmur2(k)) & 0x80000000 for k in keys), "the sign bit is exercised"
    assert all(0 <= h <= 0x7FFFFFFF for h in hashes)


def test_the_partition_is_the_one_aiokafkas_partitioner_picks() -> None:
    keys = [b"079%09d" % n for n in range(500)]
    parts = list(range(12))
    chosen = [int(DefaultPartitioner()(k, parts, parts)) for k in keys]
    assert [h % 12 for h in key_hashes(keys)] == chosen


def test_no_keys() -> None:
    assert key_hashes([]) == []
