"""`python -m hub.bench.feed`: the two feeds it times do what two workers' feeds do — the first
writes every record, the second finds the store there and writes none (a figure from feeds that
both wrote, or neither, would mean nothing)."""

from __future__ import annotations

from hub.bench import feed as bench_feed
from hub.wire.codec import Codec


def test_the_feed_bench_writes_each_record_once() -> None:
    codec = Codec()
    records = bench_feed.records(codec, 300)
    assert len({r.key for r in records}) == len(records) == 300
    (first_us, first_written), (other_us, other_written) = bench_feed.run_once(codec, records)
    assert (first_written, other_written) == (300, 0)
    assert first_us > 0 and other_us > 0
