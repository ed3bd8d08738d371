"""Contender (f): a faust agent that only counts — the ceiling of faust's consume path here.

Same app settings, event loop and batching as `hub worker` (``stream.take_events``), no work
per event: what faust's consumer, conductor and stream cost on their own bounds every faust
worker, whatever its pipeline does.

Run as ``python -m hub.bench.faust_ceiling COUNT OUT [chunks]`` with the usual HUB_* settings
(the group is HUB_APP_ID): counts COUNT source messages, writes ``{"events": n, "seconds": s}``
to OUT and exits. With ``chunks`` the app runs on the worker's ``hubkafka://`` transport and
counts whole fetches (hub/kafka/transport.py): faust's ceiling on the path the worker now takes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust

from hub.domain.topics import SourceTopic
from hub.kafka.client import connection, faust_broker
from hub.kafka.transport import SCHEME, Chunk, Handled, take_in_chunks, whole
from hub.settings import load_settings
from hub.stream.app import Worker, use_event_loop


def build(count: int, out: Path, chunks: bool = False) -> faust.App:
    settings = load_settings()
    use_event_loop(settings.event_loop)
    settings.home.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        **faust_broker(connection(settings), scheme=SCHEME if chunks else "kafka"),
        store="memory://",
        web_enabled=False,
        datadir=str(settings.home / "ceiling"),
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=4096,
        broker_max_poll_records=settings.store_batch_size if chunks else 1000,
    )
    topics = [t.value for t in SourceTopic]
    state = {"events": 0, "first": 0, "started": 0.0}

    def counted(n: int) -> None:
        if not state["started"]:  # timed from the first batch's arrival, without it
            state["started"], state["first"] = time.perf_counter(), n
        state["events"] += n
        if state["events"] >= count:
            seconds = time.perf_counter() - state["started"]
            timed = state["events"] - state["first"]
            out.write_text(json.dumps({"events": timed, "seconds": seconds}))
            os._exit(0)  # the figure is written; no graceful shutdown to wait for

    if chunks:

        async def count_chunk(chunk: Chunk) -> Handled:
            counted(sum(len(records) for records in chunk.values()))
            return whole(chunk)

        take_in_chunks(app, topics, count_chunk)
        return app

    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def count_events(stream: Any) -> AsyncIterator[None]:
        async for events in stream.take_events(settings.store_batch_size, within=0.02):
            counted(len(events))
            yield None

    return app


def main() -> None:
    app = build(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:] == ["chunks"])
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
