"""Run the contenders side by side on the local broker and collect comparable figures.

Every contender reads the same pre-loaded, already-encoded events (the simulator's realistic
mix) from the source topics, through a consumer group of its own positioned at the start of
the pre-load. Throughput is measured from the first to the last event a contender finishes
(its start-up is excluded); CPU seconds and peak RSS come from the kernel (``wait4``) for the
contender's process, start-up included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from hub.bench.mix import bench_traffic
from hub.bench.stores import BenchStore, Times
from hub.domain.topics import AckTopic, AgencyTopic, SourceTopic, TopicSpec, UnifiedTopic
from hub.kafka import local as kafka_local
from hub.kafka.admin import (
    commit_offsets,
    create_topics,
    delete_topics,
    end_offsets,
    partition_counts,
    start_group_at_end,
)
from hub.kafka.client import connection, write_java_client_properties
from hub.metrics import BATCH_STAGES
from hub.ops.scrape import Scrape, fetch
from hub.settings import Settings
from hub.sim.simulator import produce
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec

SOURCES = [t.value for t in SourceTopic]
DOWNSTREAM = [t.value for t in (*UnifiedTopic, *AgencyTopic, *AckTopic)]
PERF_TOPIC = "bench.perf"


@dataclass
class Figures:
    """One contender's figures (medians over runs for throughput)."""

    events_per_s: float | None
    cpu_s_per_1k: float | None
    peak_rss_mb: float | None
    runs: list[float] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Preload:
    events: int
    start: dict[tuple[str, int], int]
    record_bytes: int


@dataclass
class Usage:
    seconds: float  # CPU, user + system
    peak_rss_mb: float
    returncode: int


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running(proc: subprocess.Popen[bytes]) -> bool:
    """Alive and not a zombie, without reaping it (its rusage is read by ``reap``)."""
    try:
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class HighWater:
    """Peak RSS of running children, from the kernel's VmHWM in /proc/PID/status.

    Not ``ru_maxrss`` from wait4: Linux carries the parent's RSS at fork into the child's
    figure across exec, so every contender would show at least the bench's own memory (the
    pre-load it holds). A thread reads each child's high-water mark every 0.1 s until it exits.
    """

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def watch(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        with self.lock:
            self.peaks[proc.pid] = 0
            if self.thread is None:
                self.thread = threading.Thread(target=self._sample, daemon=True)
                self.thread.start()
        return proc

    def _sample(self) -> None:
        while True:
            with self.lock:
                pids = list(self.peaks)
            for pid in pids:
                kb = vm_hwm_kb(pid)
                with self.lock:
                    if pid in self.peaks and kb > self.peaks[pid]:
                        self.peaks[pid] = kb
            time.sleep(0.1)

    def pop(self, pid: int) -> float | None:
        """The peak in MB (None when the process was never watched or never seen running)."""
        with self.lock:
            kb = self.peaks.pop(pid, 0)
        return kb / 1024 if kb else None


HIGH_WATER = HighWater()


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a contender process whose peak memory is followed (see :class:`HighWater`)."""
    return HIGH_WATER.watch(subprocess.Popen(args, **kwargs))


def vm_hwm_kb(pid: int) -> int:
    """The process's peak RSS so far in kB (0 when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def reap(proc: subprocess.Popen[bytes]) -> Usage:
    """Wait for ``proc``; its CPU time from the kernel's account, its peak RSS from VmHWM."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak = HIGH_WATER.pop(proc.pid)
    return Usage(usage.ru_utime + usage.ru_stime, peak if peak is not None else 0.0,
                 proc.returncode)  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> Usage:
    """SIGTERM (a clean shutdown), SIGKILL after a minute; then reap."""
    if running(proc):
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while running(proc) and time.monotonic() < deadline:
            time.sleep(0.2)
        if running(proc):
            proc.kill()
    return reap(proc)


def stop_left(procs: list[subprocess.Popen[bytes]]) -> None:
    """:func:`stop` the processes of ``procs`` not reaped yet."""
    for proc in procs:
        if proc.returncode is None:
            stop(proc)


class Bench:
    def __init__(self, settings: Settings, events: int, runs: int, cap_s: float,
                 say: Callable[[str], None]) -> None:  # fmt: skip
        self.settings = settings
        self.events = events
        self.runs = runs
        self.cap_s = cap_s
        self.say = say
        self.kafka = connection(settings)
        self.tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        # The bench's own register topic: a worker's start-up (loading the register) then does
        # not depend on what earlier runs and tests left in ref.population.v1.
        self.population = f"bench.population.{uuid.uuid4().hex[:8]}"
        # Contenders run on the topics as they are: their tables partitioned the same way.
        counts = asyncio.run(partition_counts(self.kafka, SOURCES))
        partitions = max(counts.values(), default=settings.partitions)
        self.env = {"HUB_POPULATION_TOPIC": self.population, "HUB_PARTITIONS": str(partitions)}

    # ---- preparation ---------------------------------------------------------------------
    def preload(self) -> Preload:
        codec = Codec()
        traffic = bench_traffic(codec)
        self.register_topic()
        asyncio.run(produce(self.kafka, traffic.register_messages(self.population)))
        start = asyncio.run(end_offsets(self.kafka, SOURCES))
        messages = list(traffic.stream(self.events))
        size = sum(len(m.value) for m in messages) // len(messages)
        self.say(f"pre-loading {self.events} encoded events (mean {size} bytes)")
        asyncio.run(produce(self.kafka, messages))
        return Preload(self.events, start, size)

    def register_topic(self) -> None:
        """Create the bench's register topic (compacted, like ref.population.v1)."""
        spec = TopicSpec(self.population, self.settings.partitions, {"cleanup.policy": "compact"})
        asyncio.run(create_topics(self.kafka, [spec], self.settings.replication_factor))

    def close(self) -> None:
        """Delete the bench's register topic (its consumer groups expire on their own)."""
        with contextlib.suppress(KafkaError, OSError):
            asyncio.run(delete_topics(self.kafka, [self.population]))

    def group_at(self, preload: Preload, prefix: str) -> str:
        group = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
        asyncio.run(start_group_at_end(self.kafka, group, DOWNSTREAM))
        asyncio.run(commit_offsets(self.kafka, group, preload.start))
        return group

    def client_config(self) -> Path:
        """The connection as a Java client properties file (0600: it may hold a password)."""
        path = self.tmp / "client.properties"
        return path if path.exists() else write_java_client_properties(self.kafka, path)

    # ---- (a) Kafka's own tools -------------------------------------------------------------
    def kafka_perf(self, preload: Preload) -> Figures:
        java = kafka_local._require("java", "a JDK 17+")
        cp = f"{kafka_local.resolve_jars()}/*"
        asyncio.run(create_topics(self.kafka, [TopicSpec(PERF_TOPIC, 4, {})], 1))
        base = [java, "-Xmx512m", "-cp", cp]
        producer_rates, consumer_rates, cpu, rss = [], [], 0.0, 0.0
        for _ in range(self.runs):
            prod = spawn(
                [*base, "org.apache.kafka.tools.ProducerPerformance", "--topic", PERF_TOPIC,
                 "--num-records", str(preload.events), "--record-size", str(preload.record_bytes),
                 "--throughput", "-1", "--producer.config", str(self.client_config()),
                 "--producer-props", "acks=1", "linger.ms=5"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            out = prod.stdout.read().decode() if prod.stdout else ""
            usage = reap(prod)
            match = re.findall(r"records sent, ([\d.]+) records/sec", out)
            producer_rates.append(float(match[-1]) if match else 0.0)
            cons = spawn(
                [*base, "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server",
                 self.kafka.bootstrap, "--consumer.config", str(self.client_config()),
                 "--topic", PERF_TOPIC, "--messages", str(preload.events),
                 "--group", f"bench-perf-{uuid.uuid4().hex[:8]}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            out = cons.stdout.read().decode() if cons.stdout else ""
            cusage = reap(cons)
            rows = [line.split(",") for line in out.splitlines() if re.match(r"^\d{4}-", line)]
            consumer_rates.append(float(rows[-1][9]) if rows and len(rows[-1]) > 9 else 0.0)
            cpu += usage.seconds + cusage.seconds
            rss = max(rss, usage.peak_rss_mb, cusage.peak_rss_mb)
        # The ceiling for a consume → process → produce pipeline is the slower direction.
        rate = statistics.median(min(p, c) for p, c in zip(producer_rates, consumer_rates,
                                                           strict=True))  # fmt: skip
        return Figures(rate, cpu / self.runs / preload.events * 2000, rss,
                       [min(p, c) for p, c in zip(producer_rates, consumer_rates, strict=True)],
                       "min(ProducerPerformance, ConsumerPerformance); CPU per 1k counts both "
                       "tools (1k produced + 1k consumed = 2k records)",
                       {"producer_per_s": statistics.median(producer_rates),
                        "consumer_per_s": statistics.median(consumer_rates)})  # fmt: skip

    # ---- (b) bare aiokafka ---------------------------------------------------------------------
    def passthrough(self, preload: Preload) -> Figures:
        asyncio.run(create_topics(self.kafka, [TopicSpec("bench.passthrough", 4, {})], 1))
        rates, cpu, rss = [], [], 0.0
        for _ in range(self.runs):
            group = self.group_at(preload, "b")
            proc = spawn(
                [sys.executable, "-m", "hub.bench.passthrough", group,
                 str(preload.events)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            out = json.loads((proc.stdout.read() if proc.stdout else b"{}") or b"{}")
            usage = reap(proc)
            rates.append(out["events"] / out["seconds"])
            cpu.append(usage.seconds / preload.events * 1000)
            rss = max(rss, usage.peak_rss_mb)
        return Figures(statistics.median(rates), statistics.median(cpu), rss, rates)

    # ---- (f) faust's own ceiling ------------------------------------------------------------
    def faust_ceiling(self, preload: Preload, chunks: bool = False) -> Figures:
        """(f): faust's consume path counting events; ``chunks``: on the worker's transport."""
        rates, cpu, rss = [], [], 0.0
        name = "ceiling-chunks" if chunks else "ceiling"
        for run in range(self.runs):
            group = self.group_at(preload, "f2" if chunks else "f")
            out = self.tmp / f"{name}-{run}.json"
            env = {**os.environ, "HUB_HOME": str(self.tmp / f"{name}-{run}"), "HUB_APP_ID": group}
            proc = spawn(
                [sys.executable, "-m", "hub.bench.faust_ceiling", str(preload.events), str(out),
                 *(["chunks"] if chunks else [])],
                env=env, stdout=(self.tmp / f"{name}-{run}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            deadline = time.monotonic() + self.cap_s + 90
            while running(proc) and time.monotonic() < deadline:
                time.sleep(0.2)
            usage = stop(proc)
            if not out.exists():
                raise RuntimeError(
                    f"faust ceiling: no figure (exit {usage.returncode}; see {out.parent})"
                )
            figures = json.loads(out.read_text())
            rates.append(figures["events"] / figures["seconds"])
            cpu.append(usage.seconds / preload.events * 1000)
            rss = max(rss, usage.peak_rss_mb)
        note = (
            "counts whole fetches on the hubkafka:// transport and does nothing else"
            if chunks
            else "counts events and does nothing else: faust's consume path alone"
        )
        return Figures(statistics.median(rates), statistics.median(cpu), rss, rates, note)

    # ---- (c), (c2), (e): workers writing the central store ---------------------------------------
    def workers(self, preload: Preload, name: str, command: list[str], count: int = 1,
                extra_env: dict[str, str] | None = None, cwd: Path | None = None,
                gauges: tuple[str, ...] = ()) -> Figures:  # fmt: skip
        """``gauges``: metrics read from the workers' /metrics as they stop (summed over their
        series and the workers), one value a run each, in the figures' ``extra``."""
        rates, cpu, rss, notes = [], [], 0.0, []
        read: dict[str, list[float]] = {gauge: [] for gauge in gauges}
        for run in range(self.runs):
            group = self.group_at(preload, name)
            home = self.tmp / f"{name}-{run}"
            home.mkdir(parents=True)
            store = BenchStore(home)
            procs, ports = [], []
            for i in range(count):
                ports.append(free_port())
                env = {**os.environ, **self.env, "HUB_HOME": str(home), "HUB_APP_ID": group,
                       "HUB_METRICS_PORT": str(ports[-1]), "HUB_STORE_URL": store.url,
                       **(extra_env or {})}  # fmt: skip
                log = (home / f"worker-{i}.log").open("wb")
                procs.append(spawn([sys.executable, "-m", *command], env=env, cwd=cwd,
                                              stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
            try:
                rate, done = self._watch_store(store, preload.events, procs)
            except BaseException:
                stop_left(procs)  # one exited early or the bench was stopped: none is left
                raise
            scrapes = [fetch(f"http://127.0.0.1:{p}/metrics") for p in ports] if gauges else []
            for gauge in gauges:
                read[gauge].append(sum(sc.total(gauge) for sc in scrapes if sc is not None))
            usages = [stop(p) for p in procs]
            rates.append(rate)
            cpu.append(sum(u.seconds for u in usages) / max(done, 1) * 1000)
            rss = max([rss, *(u.peak_rss_mb for u in usages)])
            if done < preload.events:
                notes.append(f"run {run + 1}: {done} of {preload.events} stored within the "
                             f"{self.cap_s:.0f} s cap")  # fmt: skip
        return Figures(statistics.median(rates), statistics.median(cpu), rss, rates,
                       "; ".join(notes), dict(read))  # fmt: skip

    def _watch_store(self, store: BenchStore, expected: int,
                     procs: list[subprocess.Popen[bytes]]) -> tuple[float, int]:  # fmt: skip
        """Rate between the first stored row and the last; stops at ``expected`` or the cap."""
        first: tuple[float, int] | None = None
        last = (time.monotonic(), 0)
        deadline = time.monotonic() + self.cap_s + 90  # start-up allowance
        while time.monotonic() < deadline:
            if not all(running(p) for p in procs):
                raise RuntimeError(f"a contender exited early; see {store.path.parent}")
            n = store.count()
            now = time.monotonic()
            if n and first is None:
                first = (now, n)
                deadline = now + self.cap_s
            if n != last[1]:
                last = (now, n)
            if n >= expected:
                break
            time.sleep(0.1)
        if first is None or last[0] <= first[0]:
            return 0.0, last[1]
        return (last[1] - first[1]) / (last[0] - first[0]), last[1]

    def latency(self, rate: float, seconds: float, workers: int = 1,
                postgres_url: str | None = None) -> Figures:  # fmt: skip
        """(c) at a fixed offered rate, occurred → stored: the simulator's traffic encoded ahead
        and sent at the rate, each event at the moment it occurred; WARMUP_S of it first.
        ``workers`` processes share the topics' partitions in one group and one store: a fresh
        SQLite file, or a fresh schema of the PostgreSQL database ``postgres_url``."""
        group = f"bench-lat-{uuid.uuid4().hex[:8]}"
        asyncio.run(start_group_at_end(self.kafka, group, [*SOURCES, *DOWNSTREAM]))
        home = Path(tempfile.mkdtemp(prefix="latency-", dir=self.tmp))  # one a call
        store = BenchStore(home, postgres_url)
        procs, urls = [], []
        for i in range(workers):
            port = free_port()
            env = {**os.environ, **self.env, "HUB_HOME": str(home), "HUB_APP_ID": group,
                   "HUB_METRICS_PORT": str(port), "HUB_STORE_URL": store.url}  # fmt: skip
            procs.append(spawn([sys.executable, "-m", "hub", "worker"], env=env,
                               stdout=(home / f"worker-{i}.log").open("wb"),
                               stderr=subprocess.STDOUT))  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}/metrics")
        try:
            return self._latency_of(procs, urls, store, rate, seconds)
        finally:
            stop_left(procs)  # when one failed too: none is left running
            store.close()

    def _latency_of(self, procs: list[subprocess.Popen[bytes]], urls: list[str],
                    store: BenchStore, rate: float, seconds: float) -> Figures:  # fmt: skip
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(url, proc)  # start-up (table recovery) is not latency
        traffic = bench_traffic(Codec(), seed=7)
        asyncio.run(produce(self.kafka, traffic.register_messages(self.population)))
        # Traffic at the offered rate for WARMUP_S, then the measured window: what occurred in
        # the window is measured, in steady state (a first fetch, cold caches are not latency).
        warmup, count = int(rate * WARMUP_S), int(rate * seconds)
        # All of it is encoded first, each event stamped with the moment it is sent: the producer
        # then costs only Kafka's client while the worker is measured (generating and encoding
        # live took a core of its own here and could not offer 2,000/s).
        lead = generation_seconds(warmup + count) + 2.0
        begin, start_at = datetime.now(UTC) + timedelta(seconds=lead), time.monotonic() + lead
        messages = list(traffic.scheduled(warmup + count, rate, begin))
        started = begin + timedelta(seconds=WARMUP_S)
        self.say(f"latency: {warmup} + {count} events encoded, sending at {rate:,.0f}/s "
                 f"to {len(procs)} worker{'s' if len(procs) > 1 else ''}")  # fmt: skip
        report = asyncio.run(produce(self.kafka, messages, rate=rate, start_at=start_at))
        offered = report.sent / max(report.seconds, 1e-9)
        _, done = self._watch_store(store, warmup + count, procs)
        stages = stage_means_ms(*[fetch(url) for url in urls])
        usages = [stop(proc) for proc in procs]
        live = live_latencies(store.times(), started)
        return Figures(None, None, max(u.peak_rss_mb for u in usages), [], "", {
            "offered_per_s": round(offered), "workers": len(procs), "store": store.kind,
            "latency_p50_ms": _ms(percentile(live.stored, 0.5)),
            "latency_p99_ms": _ms(percentile(live.stored, 0.99)),
            # Of it, before the event's batch began (occurred → ingested).
            "waited_p50_ms": _ms(percentile(live.waited, 0.5)),
            "waited_p99_ms": _ms(percentile(live.waited, 0.99)),
            "latency_events": len(live.stored), "latency_backdated_events": live.backdated,
            # Not stored within the cap: the slowest, absent from the quantiles above.
            "latency_unstored_events": max(0, warmup + count - done),
            # The producer shares the machine with the worker: what it took while sending.
            "producer_cpu_us_per_event": round(report.cpu_seconds / max(report.sent, 1) * 1e6),
            **{f"{stage}_ms_per_batch": ms for stage, ms in stages.items()}})  # fmt: skip


def stage_means_ms(*scrapes: Scrape | None) -> dict[str, float]:
    """Mean milliseconds a batch spent in each of :data:`hub.metrics.BATCH_STAGES`, from the
    workers' ``hub_stage_duration_seconds`` (every batch of every worker scraped)."""
    sums: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for scrape in scrapes:
        if scrape is not None:
            sums.update(scrape.by("hub_stage_duration_seconds_sum", "stage"))
            counts.update(scrape.by("hub_stage_duration_seconds_count", "stage"))
    return {stage: round(sums[stage] / counts[stage] * 1000, 1)
            for stage in BATCH_STAGES if counts[stage] and stage in sums}  # fmt: skip


# Seconds of traffic before the latency window (excluded from the figures).
WARMUP_S = 5.0


def generation_seconds(count: int, sample: int = 300) -> float:
    """About how long generating and encoding ``count`` events of the mix takes here (timed on a
    sample, with a margin): the lead a scheduled window needs."""
    traffic = Traffic(Codec(), seed=1, provinces=5, population=300, stale_share=0)
    began = time.perf_counter()
    for _ in traffic.stream(sample):
        pass
    return (time.perf_counter() - began) / sample * count * 1.5


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """Until the worker reports ``hub_worker_ready 1`` (its tables are recovered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scrape = fetch(url)
        if scrape is not None and scrape.total("hub_worker_ready") >= 1:
            return
        if not running(proc):
            raise RuntimeError("the worker exited during start-up")
        time.sleep(0.5)
    raise RuntimeError(f"the worker was not ready after {timeout:.0f} s")


@dataclass
class Latencies:
    """Seconds, per stored event that occurred during the run: occurred → stored, and
    occurred → ingested (the moment its batch began: what it waited before the worker took it
    up); ``backdated``: stored events that occurred before the run (the warm-up, and dossier
    histories replaying steps days old: their "latency" is their age, not the hub's delay)."""

    stored: list[float] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)
    backdated: int = 0


def live_latencies(times: Iterable[Times], since: datetime) -> Latencies:
    """:class:`Latencies` of the events that occurred from ``since`` on, from the store's own
    timestamps (:meth:`BenchStore.times`)."""
    found = Latencies()
    for occurred, ingested, stored in times:
        if occurred < since - timedelta(seconds=1):
            found.backdated += 1
            continue
        found.stored.append((stored - occurred).total_seconds())
        found.waited.append((ingested - occurred).total_seconds())
    return found


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def as_json(results: dict[str, Figures]) -> dict[str, Any]:
    return {name: asdict(fig) for name, fig in results.items()}
