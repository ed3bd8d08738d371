"""Store calls retried with backoff, then given up loudly: the one policy of the worker's batches,
its cases and its register feed.

A call that fails is retried ``STORE_RETRIES`` times (0.5 s, 1 s, 2 s, … apart) on a fresh
connection; if the last attempt fails too, :meth:`StoreRetry.required` raises
:class:`StoreFailed`, the log says the call "failed N times", and the caller stops the worker
with nothing of its work acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from hub.metrics import HubMetrics
from hub.redaction import redact
from hub.store.sql import Connection, StoreError

log = logging.getLogger("hub.worker")
T = TypeVar("T")

# A store call is retried this many times (with backoff) before the worker stops loudly.
STORE_RETRIES = 5


class StoreFailed(StoreError):
    """A store call failed on every attempt: the worker stops with nothing of it acknowledged."""


class StoreRetry:
    """Run store calls on ``connection`` with the retry policy. ``in_thread``: each call runs in
    a worker thread (the register feed, on its own connection); otherwise on the event loop's
    thread (the batches: a slow store should pause consumption anyway, and a thread would
    fight the loop for the GIL on every row)."""

    def __init__(self, connection: Connection, metrics: HubMetrics, *, in_thread: bool = False,
                 retries: int = STORE_RETRIES, first_delay_s: float = 0.5) -> None:  # fmt: skip
        self.connection = connection
        self.metrics = metrics
        self.in_thread = in_thread
        self.retries = retries
        self.first_delay_s = first_delay_s

    async def required(self, what: str, call: Callable[[], T]) -> T:
        """``call``'s result; raises :class:`StoreFailed` once it failed on every attempt."""
        delay = self.first_delay_s
        for attempt in range(1, self.retries + 1):
            try:
                return await asyncio.to_thread(call) if self.in_thread else call()
            except Exception as exc:  # any store failure: retry, then give up
                self.metrics.store_write_errors.inc()
                if attempt == self.retries:
                    log.critical("store %s failed %d times: %s; the store failed for good",
                                 what, attempt, redact(str(exc)))  # fmt: skip
                    raise StoreFailed(f"the store failed for good ({what})") from exc
                log.warning("store %s failed (attempt %d): %s; retrying", what, attempt,
                            redact(str(exc)))  # fmt: skip
                self.connection.reset()
                await asyncio.sleep(delay)
                delay *= 2
        raise StoreFailed(f"the store failed for good ({what})")  # retries < 1
