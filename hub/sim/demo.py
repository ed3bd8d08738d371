"""`hub demo`: the whole hub on this machine, in one command.

Starts the local broker (unless one runs), creates the topics, seeds the population register,
starts a `hub worker` process, publishes realistic traffic with a share of poison from several
provinces, lets simulated agencies acknowledge most interconnection tasks, shows live figures
from the worker's /metrics, then drains, shuts everything it started down, and prints a summary.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hub.domain.indicators import Period
from hub.domain.topics import AckTopic, AgencyTopic, SourceTopic, UnifiedTopic, topic_plan
from hub.kafka import local as kafka_local
from hub.kafka.admin import broker_answers, create_topics, start_group_at_end
from hub.kafka.client import connection
from hub.ops.kpi import kpi_report
from hub.ops.scrape import Scrape, fetch
from hub.ops.view import kpi_table
from hub.settings import Settings
from hub.sim.agencies import run_agencies
from hub.sim.simulator import SimulationReport, produce
from hub.sim.traffic import Traffic
from hub.store.sql import open_store
from hub.wire.codec import Codec


@dataclass
class DemoOptions:
    duration: float = 60.0
    rate: float = 200.0
    provinces: int = 5
    population: int = 3000
    poison: float = 0.02
    seed: int = 1
    ack_share: float = 0.9


@dataclass
class DemoResult:
    report: SimulationReport
    scrape: Scrape
    acks: int
    worker_exit: int | None
    broker_stopped: bool
    missing: int  # valid events sent but not in the central store
    leftovers: list[int] = field(default_factory=list)
    kpi: dict[str, Any] = field(default_factory=dict)  # `hub kpi` over the simulated dossiers


class Demo:
    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.metrics_url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        self.worker: subprocess.Popen[bytes] | None = None
        self.started_broker = False

    def say(self, text: str) -> None:
        self.console.print(f"[bold cyan]demo[/] {text}")

    # ---- lifecycle ---------------------------------------------------------------------
    def start_broker(self) -> None:
        kafka = connection(self.settings)
        if asyncio.run(broker_answers(kafka)):
            self.say(f"using the running broker at {kafka.describe()}")
            return
        self.say("starting the local Kafka broker (first run resolves its jars from Maven)…")
        st = kafka_local.start(self.settings)
        self.started_broker = True
        self.say(f"kafka {st.version} running at {st.address}")

    def start_worker(self) -> None:
        log_path = self.settings.home / "demo-worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"starting `hub worker` (log: {log_path})")
        with log_path.open("ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "hub", "worker", "--loglevel", "info"],
                stdout=log, stderr=subprocess.STDOUT, env=self.worker_env(),
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while fetch(self.metrics_url) is None:
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited early; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not come up in 120 s; see {log_path}")
            time.sleep(0.5)

    def worker_env(self) -> dict[str, str]:
        # Deadlines are working days from each dossier's receipt (hub/domain/calendar.py); the
        # simulator backdates some receipts, so late agencies show up as overdue cases.
        return os.environ.copy()

    def stop_worker(self) -> int | None:
        if self.worker is None:
            return None
        if self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        return self.worker.returncode

    # ---- the run -----------------------------------------------------------------------
    async def traffic(
        self, live: Callable[[SimulationReport], None]
    ) -> tuple[SimulationReport, int]:
        o = self.options
        gen = Traffic(Codec(), seed=o.seed, provinces=o.provinces, population=o.population)
        bootstrap = connection(self.settings)
        report = SimulationReport()
        self.say(f"seeding ref.population.v1 with {len(gen.people)} people")
        await produce(bootstrap, gen.register_messages(), report=report)
        stop = asyncio.Event()
        agencies = asyncio.create_task(
            run_agencies(bootstrap, f"{self.settings.app_id}-demo-agencies", o.ack_share, stop)
        )
        count = int(o.duration * o.rate)
        provinces = ", ".join(gen.province_codes)
        self.say(f"publishing {count} events at {o.rate:.0f}/s from provinces {provinces} "
                 f"({o.poison:.0%} poison, seed {o.seed})")  # fmt: skip
        sender = asyncio.create_task(
            produce(bootstrap, gen.stream(count, o.poison), rate=o.rate, report=report)
        )
        while not sender.done():
            live(report)
            await asyncio.sleep(1)
        await sender
        await self.drain(report, live)
        stop.set()
        return report, await agencies

    async def drain(
        self, report: SimulationReport, live: Callable[[SimulationReport], None]
    ) -> None:
        """Wait until every valid event sent is in the central store (at most two minutes)."""
        store = open_store(self.settings.resolved_store_url)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                live(report)
                if store.count_present(report.valid_event_ids) >= len(report.valid_event_ids):
                    return
                await asyncio.sleep(1)
            self.say("[yellow]the worker has not stored everything after two minutes[/]")
        finally:
            store.close()

    def run(self) -> DemoResult:
        o = self.options
        self.start_broker()
        plan = topic_plan(self.settings.partitions)
        created = asyncio.run(create_topics(connection(self.settings), plan,
                                            self.settings.replication_factor))  # fmt: skip
        self.say(f"topics: {len(created)} created, {len(plan) - len(created)} already there")
        watched = [t.value for t in (*SourceTopic, *UnifiedTopic, *AgencyTopic, *AckTopic)]
        if asyncio.run(start_group_at_end(connection(self.settings), self.settings.app_id,
                                          watched)):  # fmt: skip
            self.say(
                f"new consumer group {self.settings.app_id}: starting at the end of the topics"
            )
        scrape = Scrape()
        acks = 0
        report = SimulationReport()
        try:
            self.start_worker()
            with Live(live_table(Scrape(), report, o), console=self.console,
                      refresh_per_second=2) as live:  # fmt: skip

                def update(rep: SimulationReport) -> None:
                    live.update(live_table(fetch(self.metrics_url) or Scrape(), rep, o))

                report, acks = asyncio.run(self.traffic(update))
            scrape = fetch(self.metrics_url) or Scrape()
        finally:
            self.say("shutting down the worker…")
            code = self.stop_worker()
            stopped = False
            if self.started_broker:
                self.say("stopping the broker this demo started…")
                stopped = kafka_local.stop(self.settings)
        leftovers = [self.worker.pid] if self.worker and _alive(self.worker.pid) else []
        store = open_store(self.settings.resolved_store_url)
        try:
            missing = store.missing(report.valid_event_ids)
            if missing:
                self.say(f"[red]valid events not stored:[/] {', '.join(missing[:10])}")
            (self.settings.home / "demo-missing.txt").write_text("\n".join(missing))
            # The simulator's dossiers were received over the last 40 days (hub/sim/dossiers.py).
            now = datetime.now(UTC)
            period = Period("the last 41 days", now - timedelta(days=41), now + timedelta(days=1))
            kpi = kpi_report(store, period, now)
        finally:
            store.close()
        return DemoResult(report, scrape, acks, code, stopped, len(missing), leftovers, kpi)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- views --------------------------------------------------------------------------------
def live_table(s: Scrape, report: SimulationReport, o: DemoOptions) -> Table:
    table = Table(title="Lienthong Hub — live", show_header=False)
    p50, p99 = (
        s.quantile("hub_event_latency_seconds", 0.5),
        s.quantile("hub_event_latency_seconds", 0.99),
    )
    table.add_row("events sent", f"{report.sent - report.register} (at {o.rate:.0f}/s)")
    table.add_row("read by the worker", f"{s.total('hub_events_in_total'):.0f}")
    table.add_row("stored (central store)", f"{s.total('hub_store_rows_total'):.0f}")
    table.add_row("dead letters", f"{s.total('hub_dead_letters_total'):.0f}")
    table.add_row("consumer lag", f"{s.total('hub_consumer_lag'):.0f}")
    table.add_row("occurred → stored p50 / p99",
                  f"{_ms(p50)} / {_ms(p99)}")  # fmt: skip
    table.add_row("cases open / overdue",
                  f"{s.total('hub_interconnection_cases_open'):.0f} / "
                  f"{s.total('hub_interconnection_cases_overdue'):.0f}")  # fmt: skip
    return table


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def summary_tables(result: DemoResult, o: DemoOptions) -> list[Table]:
    s, rep = result.scrape, result.report
    run = Table(title="Demo summary", show_header=False)
    sent = rep.sent - rep.register
    poison = sum(rep.poison.values())
    run.add_row("events sent", f"{sent} ({sent - poison} valid, {poison} poison)")
    run.add_row("register records", str(rep.register))
    run.add_row("read by the worker", f"{s.total('hub_events_in_total'):.0f}")
    run.add_row("events stored", f"{s.total('hub_store_rows_total'):.0f}")
    run.add_row("valid events missing from the store", str(result.missing))
    run.add_row("dead letters", f"{s.total('hub_dead_letters_total'):.0f}")
    run.add_row("occurred → stored p50 / p99",
                f"{_ms(s.quantile('hub_event_latency_seconds', 0.5))} / "
                f"{_ms(s.quantile('hub_event_latency_seconds', 0.99))}")  # fmt: skip
    run.add_row("agency acknowledgements", str(result.acks))
    run.add_row("cases open / overdue",
                f"{s.total('hub_interconnection_cases_open'):.0f} / "
                f"{s.total('hub_interconnection_cases_overdue'):.0f}")  # fmt: skip
    skipped = s.by("hub_interconnection_skipped_total", "reason")
    run.add_row("no case opened (reason)", ", ".join(
        f"{reason} {n:.0f}" for reason, n in sorted(skipped.items())) or "none")  # fmt: skip
    run.add_row("citizen notifications", f"{s.total('hub_case_notifications_total'):.0f}")

    dead = Table(title="Dead letters by reason")
    dead.add_column("reason")
    dead.add_column("count", justify="right")
    for reason, n in sorted(s.by("hub_dead_letters_total", "reason").items()):
        dead.add_row(reason, f"{n:.0f}")

    kpi = kpi_table(result.kpi) if result.kpi else Table(title="no dossier indicators")

    shutdown = Table(title="Shutdown", show_header=False)
    shutdown.add_row("worker", f"exited with code {result.worker_exit}")
    shutdown.add_row("broker", "stopped" if result.broker_stopped else "left running (not ours)")
    shutdown.add_row("processes left behind", str(len(result.leftovers)))
    return [run, dead, kpi, shutdown]
