"""How much the worker's Kafka client may hold of each partition it reads
(HUB_FETCH_PARTITION_BYTES): over a backlog it holds that much of every partition before the
worker takes it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.kafka.client import connection
from hub.settings import Settings
from hub.stream.app import faust_app


async def fetch_bytes_of_the_worker_consumer(settings: Settings) -> int:
    """max_partition_fetch_bytes of the aiokafka consumer faust builds for the worker's app
    (built, not started: nothing connects)."""
    app = faust_app(settings, connection(settings))
    client = app.consumer._thread._create_consumer(asyncio.get_running_loop())  # type: ignore[attr-defined]
    try:
        return int(client._max_partition_fetch_bytes)
    finally:
        await client.stop()


async def test_the_worker_fetches_at_most_the_setting_of_a_partition(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.setenv("HUB_FETCH_PARTITION_BYTES", "200000")
    assert await fetch_bytes_of_the_worker_consumer(Settings()) == 200_000


async def test_the_default_is_fausts_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """1 MiB, what the worker fetched before the setting (docs/BENCHMARKS.md, fourteenth round:
    smaller fetches did not lower a whole drain's peak memory)."""
    monkeypatch.delenv("HUB_FETCH_PARTITION_BYTES", raising=False)
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    assert await fetch_bytes_of_the_worker_consumer(Settings()) == 1024**2


@pytest.mark.parametrize("bad", ["0", "-1", "1023", "a lot"])
def test_a_fetch_below_a_kibibyte_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("HUB_FETCH_PARTITION_BYTES", bad)
    with pytest.raises(ValidationError, match="fetch_partition_bytes"):
        Settings()
