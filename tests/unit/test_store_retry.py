"""The worker's store retry policy: a failing call is retried on a fresh connection, then given
up loudly with StoreFailed (the caller stops the worker); the same for the register feed's
thread."""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import CollectorRegistry

from hub.metrics import HubMetrics
from hub.store.sql import Connection
from hub.stream.retry import StoreFailed, StoreRetry


class Flaky:
    """Fails ``failures`` times, then answers; records the thread of each call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.threads: list[int] = []

    def __call__(self) -> str:
        self.threads.append(threading.get_ident())
        if len(self.threads) <= self.failures:
            raise ConnectionError("server closed the connection unexpectedly")
        return "rows"


class Resets(Connection):
    def __init__(self) -> None:
        super().__init__("sqlite:///unused")
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1


@pytest.mark.parametrize("in_thread", [False, True])
async def test_a_call_that_recovers_is_retried_on_a_fresh_connection(in_thread: bool) -> None:
    metrics = HubMetrics.create(CollectorRegistry())
    connection = Resets()
    retry = StoreRetry(connection, metrics, in_thread=in_thread, retries=3, first_delay_s=0)
    call = Flaky(failures=2)
    assert await retry.required("write", call) == "rows"
    assert len(call.threads) == 3 and connection.resets == 2
    assert metrics.store_write_errors._value.get() == 2
    on_loop = all(t == threading.get_ident() for t in call.threads)
    assert on_loop is not in_thread


async def test_a_store_gone_for_good_is_given_up_loudly(caplog: pytest.LogCaptureFixture) -> None:
    retry = StoreRetry(Resets(), HubMetrics.create(CollectorRegistry()), in_thread=True,
                       retries=3, first_delay_s=0)  # fmt: skip
    with (caplog.at_level(logging.WARNING, logger="hub.worker"),
          pytest.raises(StoreFailed, match="register feed write")):  # fmt: skip
        await retry.required("register feed write", Flaky(failures=99))
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "register feed write failed 3 times" in critical[0]
    assert "the store failed for good" in critical[0]
