"""`hub bench --quick` runs end to end on the real broker (it must run, not meet goals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.conftest import run_hub

pytestmark = pytest.mark.integration
CONTENDERS = ("kafka_perf", "aiokafka_passthrough", "hub", "hub_2_workers", "quixstreams",
              "faust_naive", "faust_ceiling", "faust_ceiling_chunks")  # fmt: skip


def test_quick_bench_reports_every_contender(kafka_broker: Settings, tmp_path: Path) -> None:
    done = run_hub("bench", "--quick", "--json", "--out", str(tmp_path / "out"), timeout=600)
    result = json.loads(done.stdout)
    # --out keeps what was printed, the table and the chart; the command reproduces the run.
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == result
    assert (tmp_path / "out" / "results.md").read_text().startswith("| contender |")
    assert (tmp_path / "out" / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["meta"]["command"] == "hub bench --quick"
    for name in CONTENDERS:
        assert {"events_per_s", "cpu_s_per_1k", "peak_rss_mb"} <= set(result[name]), name
    for name in (n for n in CONTENDERS if n != "hub_2_workers"):
        assert result[name]["events_per_s"] > 0, name
        assert result[name]["peak_rss_mb"] > 0, name
    for name in ("hub", "hub_2_workers"):  # latency of one worker, and of two in one group
        assert result[name]["extra"]["latency_p99_ms"] is not None, name
        assert result[name]["extra"]["workers"] == (2 if name == "hub_2_workers" else 1)
    assert result["meta"]["versions"]["kafka"]


def test_codec_benchmark_compares_with_the_avro_package() -> None:
    from hub.bench.codec import run

    figures = run(records=500)
    for key in (
        "hub_encode_per_s",
        "hub_decode_per_s",
        "avro_encode_per_s",
        "avro_decode_per_s",
        "simulator_per_s",
        "pipeline_per_s",
    ):
        assert figures[key] > 0


def test_the_pipeline_stages_are_timed_per_event() -> None:
    from hub.bench.codec import pipeline_stages
    from hub.wire.codec import Codec

    stages = pipeline_stages(Codec(), records=300, repeats=1)
    assert set(stages) == {"decode_us", "validate_us", "process_us", "encode_envelope_us"}
    assert all(0 < us < 100_000 for us in stages.values()), stages
