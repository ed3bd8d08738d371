"""`hub`: the one command-line entry point. Each command is thin; the work lives in modules."""

from __future__ import annotations

import asyncio
import sys

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


def main() -> None:
    cli(prog_name="hub")
