"""Contender (f): a faust agent that only counts — the ceiling of faust's consume path here.

Same app settings, event loop and batching as `hub worker` (``stream.take_events``), no work
per event: what faust's consumer, conductor and stream cost on their own bounds every faust
worker, whatever its pipeline does.

Run as ``python -m hub.bench.faust_ceiling COUNT OUT`` with the usual HUB_* settings (the group
is HUB_APP_ID): counts COUNT source messages, writes ``{"events": n, "seconds": s}`` to OUT
and exits.
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
from hub.settings import load_settings
from hub.stream.app import Worker, use_event_loop


def build(count: int, out: Path) -> faust.App:
    settings = load_settings()
    use_event_loop(settings.event_loop)
    settings.home.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        **faust_broker(connection(settings)),
        store="memory://",
        web_enabled=False,
        datadir=str(settings.home / "ceiling"),
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=4096,
        broker_max_poll_records=1000,
    )
    source = app.topic(*[t.value for t in SourceTopic], key_serializer="raw",
                       value_serializer="raw")  # fmt: skip
    state = {"events": 0, "first": 0, "started": 0.0}

    @app.agent(source)
    async def count_events(stream: Any) -> AsyncIterator[None]:
        async for events in stream.take_events(settings.store_batch_size, within=0.02):
            if not state["started"]:  # timed from the first batch's arrival, without it
                state["started"], state["first"] = time.perf_counter(), len(events)
            state["events"] += len(events)
            if state["events"] >= count:
                seconds = time.perf_counter() - state["started"]
                timed = state["events"] - state["first"]
                out.write_text(json.dumps({"events": timed, "seconds": seconds}))
                os._exit(0)  # the figure is written; no graceful shutdown to wait for
            yield None

    return app


def main() -> None:
    app = build(int(sys.argv[1]), Path(sys.argv[2]))
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
