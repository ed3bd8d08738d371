"""The traffic the worker contenders are measured on: the simulator with five provinces, 3,000
people and no stale events (``hub bench``'s pre-load and latency producer, the batch path and
the simulator's own rate)."""

from __future__ import annotations

from hub.sim.traffic import Traffic
from hub.wire.codec import Codec

PRELOAD_SEED = 42


def bench_traffic(codec: Codec, seed: int = PRELOAD_SEED) -> Traffic:
    return Traffic(codec, seed=seed, provinces=5, population=3000, stale_share=0)
