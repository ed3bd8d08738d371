"""`hub`: the one command-line entry point. Each command is thin; the work lives in modules."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from hub import kafka_local
from hub.settings import Settings, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Lienthong Hub: connect agency systems through Kafka.

    Settings come from HUB_* environment variables (see the README).
    """
    try:
        ctx.obj = load_settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise click.ClickException(f"invalid HUB_* setting: {exc}") from exc


@cli.group()
def kafka() -> None:
    """Run the local single-node KRaft broker (development, demo, tests)."""


@kafka.command("start")
@click.pass_obj
def kafka_start(settings: Settings) -> None:
    """Resolve the jars if needed, start the broker and wait until it answers."""
    try:
        st = kafka_local.start(settings)
    except kafka_local.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kafka {st.version or '?'} running at {st.address} (pid {st.pid})")


@kafka.command("stop")
@click.pass_obj
def kafka_stop(settings: Settings) -> None:
    """Shut the broker down cleanly (SIGTERM, then wait)."""
    stopped = kafka_local.stop(settings)
    click.echo("kafka stopped" if stopped else "kafka was not running")


@kafka.command("status")
@click.pass_obj
def kafka_status(settings: Settings) -> None:
    """Say whether the local broker runs, and where. Exit 1 when it does not."""
    st = kafka_local.status(settings)
    if st.running:
        click.echo(f"kafka {st.version or '?'} running at {st.address} (pid {st.pid})")
    else:
        click.echo(f"kafka not running at {st.address}")
        sys.exit(1)


@cli.group()
def topics() -> None:
    """Manage the hub's topics."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: Settings) -> None:
    """Create every topic of the design that is missing (idempotent)."""
    from hub.kafka_admin import create_topics
    from hub.topics import topic_plan

    plan = topic_plan(settings.partitions)
    try:
        created = asyncio.run(
            create_topics(settings.kafka_bootstrap, plan, settings.replication_factor)
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}"
        ) from exc
    if not created:
        click.echo(f"nothing to do: all {len(plan)} topics exist")
    for spec in created:
        extra = f" {spec.config}" if spec.config else ""
        click.echo(f"created {spec.name} ({spec.partitions} partitions){extra}")


@cli.group()
def schemas() -> None:
    """Work with the Avro schemas in schemas/ (the source of truth for the wire)."""


@schemas.command("check")
@click.option("--rev", default=None, help="Git revision to compare with "
              "(default: merge base with main, else the previous commit).")  # fmt: skip
@click.option(
    "--dir",
    "schemas_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Schemas directory (default: the repository's schemas/).",
)
def schemas_check(rev: str | None, schemas_dir: Path | None) -> None:
    """Check every schema parses and every change is backward compatible (exit 1 if not)."""
    from rich.console import Console
    from rich.table import Table

    from hub.codec import SCHEMAS_DIR
    from hub.schema_check import check, git_previous

    directory = schemas_dir or SCHEMAS_DIR
    previous, label = git_previous(directory, rev)
    rows = check(directory, previous, label)
    table = Table(title=f"schemas vs {label}")
    for col in ("schema", "against", "result", "detail"):
        table.add_column(col)
    for row in rows:
        verdict = "[green]ok[/]" if row.ok else "[red]INCOMPATIBLE[/]"
        table.add_row(row.schema, row.against, verdict, row.detail)
    Console(width=160).print(table)
    bad = [r for r in rows if not r.ok]
    if bad:
        raise click.ClickException(
            f"{len(bad)} incompatible schema change(s): "
            + "; ".join(f"{r.schema}: {r.detail}" for r in bad)
        )


@cli.command()
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))  # fmt: skip
@click.pass_obj
def worker(settings: Settings, loglevel: str) -> None:
    """Run a pipeline worker: source topics → unified/agency topics and the central store.

    Start several (each with its own HUB_METRICS_PORT) to share the partitions of one
    consumer group. Serves /metrics on HUB_METRICS_PORT.
    """
    import faust

    from hub.app import build_app

    app = build_app(settings)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


@cli.command()
@click.option("--count", default=10_000, show_default=True, help="Events to send.")
@click.option(
    "--rate", default=0.0, show_default=True, help="Events per second (0: as fast as possible)."
)
@click.option("--seed", default=1, show_default=True, help="Random seed (same seed, same traffic).")
@click.option(
    "--provinces", default=5, show_default=True, help="Provinces (2025) whose systems publish."
)
@click.option(
    "--population", default=2000, show_default=True, help="People in the synthetic register."
)
@click.option(
    "--poison", default=0.02, show_default=True, help="Share of poison events (all kinds)."
)
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="Seed ref.population.v1 with the register first.",
)
@click.pass_obj
def simulate(
    settings: Settings,
    count: int,
    rate: float,
    seed: int,
    provinces: int,
    population: int,
    poison: float,
    register: bool,
) -> None:
    """Publish realistic traffic from N provinces' systems (and the population register)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from hub.codec import Codec
    from hub.simulator import SimulationReport, produce
    from hub.synthetic import Traffic

    traffic = Traffic(Codec(), seed=seed, provinces=provinces, population=population)
    report = SimulationReport()
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.speed} ev/s" if False else ""),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False) as bar:
        if register:
            task = bar.add_task("register", total=len(traffic.people))
            asyncio.run(
                produce(
                    settings.kafka_bootstrap,
                    traffic.register_messages(),
                    progress=lambda n: bar.advance(task, n),
                    report=report,
                )
            )
        task = bar.add_task("events", total=count)
        asyncio.run(
            produce(
                settings.kafka_bootstrap,
                traffic.stream(count, poison),
                rate=rate or None,
                progress=lambda n: bar.advance(task, n),
                report=report,
            )
        )
    poison_text = ", ".join(f"{k}={v}" for k, v in sorted(report.poison.items())) or "none"
    click.echo(
        f"sent {report.sent - report.register} events ({len(report.valid_event_ids)} valid; "
        f"poison: {poison_text}) and {report.register} register records "
        f"for provinces {', '.join(traffic.province_codes)} in {report.seconds:.1f}s"
    )


def main() -> None:
    cli(prog_name="hub")
