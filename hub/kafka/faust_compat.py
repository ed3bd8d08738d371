"""Every reach into faust's private parts, in one place (faust-streaming 0.15, pinned to the
minor in pyproject.toml). tests/unit/test_faust_compat.py checks each assumption against the
installed faust, so an upgrade that breaks one fails there, loudly, not in production.

Why each is needed:
- ``on_recovery_completed``: the worker must learn the committed offsets after table recovery and
  before streams resume (the offset guard).
- ``seek_committed_zero``: aiokafka's ``seek_to_committed`` seeks only to offsets > 0, so a
  partition whose committed offset is 0 (a group started at the end of a topic that was empty)
  keeps the fetch position of before the rebalance: the messages faust fetched and dropped while
  recovering were never read again, and a partition whose whole content was in that fetch
  stayed unprocessed with no later message to reveal the gap.
- ``aiokafka_producer``: the worker sends a batch's outputs as record batches
  (hub/kafka/outbox.py) through aiokafka's ``create_batch``/``send_batch``, which faust's
  Producer does not wrap.
- ``set_producer_buffer``: faust's default 100 pending changelog messages makes a batch wait on
  one-by-one flushes.
- ``quiet_root_logger``: for its start-up spinner faust sets the root logger to DEBUG.

The ``hubkafka://`` transport (hub/kafka/transport.py) is the other reach, kept in its own module
because it is a whole consumer: it overrides ``Consumer._drain_messages`` (faust's per-message
loop), calls ``_wait_next_records`` and ``perform_seek``, tops a fetch up through the consumer
thread's ``call_thread(_fetch_records, …)`` (what faust's ``getmany`` calls, with a limit of its
own), starts ``commit`` in the background (faust runs one at a time), and writes the commit
bookkeeping ``ack`` writes (``_acked``, ``_acked_index``, ``_n_acked``, ``_read_offset``, respecting
``_committed_offset``) plus ``_unacked_messages`` / ``_waiting_for_ack`` (what ``wait_empty``
waits on during a rebalance). tests/unit/test_transport.py checks each against this faust.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust


def on_recovery_completed(app: faust.App, before: Callable[[], Awaitable[None]],
                          after: Callable[[], None]) -> None:  # fmt: skip
    """Run ``before`` when table recovery completes (streams not yet resumed), then faust's own
    completion, then ``after``."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    original = recovery.on_recovery_completed

    async def completed(generation_id: int = 0) -> None:
        await before()
        await original(generation_id)
        after()

    recovery.on_recovery_completed = completed


def seek_committed_zero(app: faust.App) -> None:
    """Make the consumer's seek to committed offsets also seek partitions committed at 0."""
    consumer: Any = app.consumer
    if getattr(consumer, "_hub_seeks_zero", False):
        return
    original = consumer.seek_to_committed

    async def seek_to_committed() -> Any:
        committed = await original()
        for tp, offset in committed.items():
            if offset == 0:
                await consumer.seek(tp, 0)
        return committed

    consumer.seek_to_committed = seek_to_committed
    consumer._hub_seeks_zero = True


def aiokafka_producer(app: faust.App) -> Any:
    """The started aiokafka producer under faust's (for ``create_batch``/``send_batch``, which
    faust's Producer does not offer)."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def set_producer_buffer(app: faust.App, max_messages: int) -> None:
    app.producer.buffer.max_messages = max_messages


class QuietWorker(faust.Worker):
    """faust's worker without its start-up spinner (which forces the root logger to DEBUG: every
    debug call in aiokafka and faust then builds a record the handler drops, 7% of a busy
    worker's time in py-spy; docs/BENCHMARKS.md)."""

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        self.spinner = None
