"""`hub`: the one command-line entry point. Each command is thin; the work lives in modules."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from aiokafka.errors import KafkaError

from hub.domain.topics import SourceTopic
from hub.kafka import local as kafka_local
from hub.kafka.access import (
    ROLE_HELP,
    AccessError,
    add_user,
    check_name,
    default_group,
    list_access,
    new_password,
    remove_user,
)
from hub.kafka.client import KafkaConnection, KafkaSettingsError, connection
from hub.metrics import SOURCE_LABELS
from hub.redaction import install_log_redaction
from hub.settings import KafkaSecurity, Settings, load_settings
from hub.tls import (
    Issued,
    TlsError,
    certificate,
    issue_certificate,
    new_authority,
    pkcs12_keystore,
    server_context,
    subject_name,
    write_private,
)

T = TypeVar("T")


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
@click.option(
    "--secure",
    is_flag=True,
    help="SASL_SSL (SCRAM) with ACLs and TLS on the controller listener; also when "
    "HUB_KAFKA_SECURITY_PROTOCOL=SASL_SSL. Creates a local CA and an admin user once.",
)
@click.pass_obj
def kafka_start(settings: Settings, secure: bool) -> None:
    """Resolve the jars if needed, start the broker and wait until it answers."""
    try:
        st = kafka_local.start(settings, secure=secure)
    except (kafka_local.BrokerError, TlsError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kafka {st.version or '?'} running at {st.address} ({st.security.value}, "
               f"pid {st.pid})")  # fmt: skip
    if st.security is not KafkaSecurity.PLAINTEXT:
        m = kafka_local.secure_material(settings)
        click.echo("admin client: HUB_KAFKA_SECURITY_PROTOCOL=SASL_SSL HUB_KAFKA_USERNAME=admin "
                   f"HUB_KAFKA_PASSWORD_FILE={m.admin_password_file.resolve()} "
                   f"HUB_KAFKA_CA_FILE={m.ca.cert_file.resolve()}")  # fmt: skip
        click.echo("users: hub kafka users add NAME --role ROLE (hub kafka users --help)")


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
        click.echo(f"kafka {st.version or '?'} running at {st.address} ({st.security.value}, "
                   f"pid {st.pid})")  # fmt: skip
    else:
        click.echo(f"kafka not running at {st.address}")
        sys.exit(1)


@kafka.group("users")
def kafka_users() -> None:
    """Principals of a secured cluster: a SCRAM credential and exactly its role's ACLs.

    Runs as HUB_KAFKA_USERNAME when set, else as the local secure broker's admin.
    Roles: gateway, importer, worker, delivery, agency:NAME, central, operator
    (docs/SECURITY.md has the table).
    """


def _admin(settings: Settings) -> tuple[KafkaConnection, Path]:
    if settings.kafka_username:
        admin = _conn(settings)
    elif kafka_local.local_security(settings) is KafkaSecurity.SASL_SSL:
        admin = kafka_local.admin_connection(settings)
    else:
        raise click.ClickException(
            "no secure broker to administer: set HUB_KAFKA_USERNAME/HUB_KAFKA_PASSWORD_FILE "
            "(an admin principal) or start one with `hub kafka start --secure`"
        )
    try:
        return admin, settings.kafka_libs or kafka_local.resolve_jars()
    except kafka_local.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@kafka_users.command("add")
@click.argument("name")
@click.option("--role", required=True, help=ROLE_HELP)
@click.option(
    "--group",
    default="",
    help="Consumer group of the user's clients (worker: its app id, default "
    "HUB_APP_ID; others: a prefix, default by role).",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Use this password; default: a new random one written to "
    "<HUB_HOME>/kafka/users/NAME.password (0600).",
)
@click.pass_obj
def kafka_users_add(settings: Settings, name: str, role: str, group: str,
                    password_file: Path | None) -> None:  # fmt: skip
    """Create (or update) user NAME with exactly the ACLs of ROLE."""
    admin, classpath = _admin(settings)
    try:
        group = group or default_group(role, settings.app_id)
        if password_file is not None:
            password = password_file.read_text().strip()
            if not password:
                raise click.ClickException(f"{password_file} is empty")
        else:
            password_file = settings.kafka_dir / "users" / f"{check_name(name)}.password"
            password = new_password()
            write_private(password_file, password + "\n")
        acls = add_user(admin, classpath, name, password, role, group)
    except (AccessError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {name} ({role}): {len(acls)} ACLs; password in {password_file}")


@kafka_users.command("roles")
@click.pass_obj
def kafka_users_roles(settings: Settings) -> None:
    """The ACLs of every role, as a Markdown table (no broker needed; docs/SECURITY.md)."""
    from hub.kafka.access import roles_markdown

    click.echo(roles_markdown(settings.app_id), nl=False)


@kafka_users.command("remove")
@click.argument("name")
@click.pass_obj
def kafka_users_remove(settings: Settings, name: str) -> None:
    """Delete user NAME's credentials and every ACL of its principal."""
    admin, classpath = _admin(settings)
    try:
        remove_user(admin, classpath, name)
    except AccessError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {name} removed")


@kafka_users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def kafka_users_list(settings: Settings, as_json: bool) -> None:
    """Every user and every ACL the cluster applies, per principal."""
    import json

    admin, classpath = _admin(settings)
    try:
        access = list_access(admin, classpath)
    except AccessError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({
            "users": access.users,
            "acls": {p: [{"resource": a.resource, "pattern": a.pattern, "name": a.name,
                          "operation": a.operation, "permission": perm} for a, perm in acls]
                     for p, acls in access.acls.items()},
        }, indent=2))  # fmt: skip
        return
    from rich.console import Console

    from hub.ops.view import access_table

    Console().print(access_table(access))


@cli.group("tls")
def tls_group() -> None:
    """TLS material for the secure deployment: a CA and the certificates it issues.

    Used by docker-compose's certificate init service; also for gateway and agency client
    certificates. Private keys are written 0600 (docs/SECURITY.md, "Certificates").
    """


@tls_group.command("ca")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="Lienthong Hub CA", show_default=True, help="The CA's name.")
def tls_ca(directory: Path, name: str) -> None:
    """Create DIRECTORY/ca.pem and ca-key.pem (kept when they exist)."""
    try:
        ca = new_authority(directory, name)
    except (TlsError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"CA {certificate(ca.cert_file).subject.rfc4514_string()}: {ca.cert_file}")


@tls_group.command("issue")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name")
@click.option("--subject", required=True, help='RFC 4514 subject, e.g. "CN=kafka-1,O=Hub".')
@click.option("--host", "hosts", multiple=True, help="DNS name or IP it serves (repeatable).")
@click.option("--server", is_flag=True, help="For a TLS server (broker, gateway).")
@click.option("--client", is_flag=True, help="For a TLS client (mutual TLS).")
@click.option(
    "--pkcs12",
    is_flag=True,
    help="Also NAME.p12 with NAME.p12.password (random): a Java keystore for brokers.",
)
def tls_issue(directory: Path, name: str, subject: str, hosts: tuple[str, ...], server: bool,
              client: bool, pkcs12: bool) -> None:  # fmt: skip
    """Issue DIRECTORY/NAME.pem and NAME-key.pem signed by DIRECTORY's CA."""
    try:
        ca = Issued(directory / "ca.pem", directory / "ca-key.pem")
        issued = issue_certificate(ca, directory / name, subject, hosts=hosts, server=server,
                                   client=client)  # fmt: skip
        click.echo(f"{issued.subject}: {issued.cert_file}")
        if pkcs12:
            password = new_password()
            write_private(directory / f"{name}.p12.password", password + "\n")
            click.echo(
                f"keystore: {pkcs12_keystore(issued, ca, directory / f'{name}.p12', password)}"
            )
    except (TlsError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


@cli.group()
def topics() -> None:
    """Manage the hub's topics."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: Settings) -> None:
    """Create every topic of the design that is missing (idempotent)."""
    from hub.domain.topics import topic_plan
    from hub.kafka.admin import create_topics

    plan = topic_plan(settings.partitions)
    try:
        created = asyncio.run(create_topics(_conn(settings), plan, settings.replication_factor))
    except (OSError, KafkaError) as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {_conn(settings).describe()}: {exc}"
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

    from hub.wire.codec import SCHEMAS_DIR
    from hub.wire.schema_check import UnknownRevision, check, git_previous

    directory = schemas_dir or SCHEMAS_DIR
    try:
        previous, label = git_previous(directory, rev)
    except UnknownRevision as exc:
        raise click.BadParameter(str(exc), param_hint="--rev") from exc
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


@schemas.command("doc")
def schemas_doc() -> None:
    """Print the event catalog (docs/EVENTS.md) generated from the schemas."""
    from hub.wire.catalog_doc import render
    from hub.wire.codec import SCHEMAS_DIR

    click.echo(render(SCHEMAS_DIR), nl=False)


@cli.command()
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))  # fmt: skip
@click.pass_obj
def worker(settings: Settings, loglevel: str) -> None:
    """Run a pipeline worker: source topics → unified/agency topics and the central store.

    Start several (each with its own HUB_METRICS_PORT) to share the partitions of one
    consumer group. Serves /metrics on HUB_METRICS_PORT.
    """
    from hub.stream.app import Worker, build_app, use_event_loop

    _port_free(settings.metrics_bind, settings.metrics_port, "HUB_METRICS_PORT")
    _check_partitions(settings)  # also: a wrong Kafka setting or no broker is one line naming it
    use_event_loop(settings.event_loop)
    app = build_app(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


@cli.command()
@click.option("--count", default=10_000, show_default=True, type=click.IntRange(min=0),
              help="Events to send.")  # fmt: skip
@click.option("--rate", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Events per second (0: as fast as possible).")  # fmt: skip
@click.option("--seed", default=1, show_default=True, help="Random seed (same seed, same traffic).")
@click.option("--provinces", default=5, show_default=True, type=click.IntRange(1, 34),
              help="Provinces (2025) whose systems publish.")  # fmt: skip
@click.option("--population", default=2000, show_default=True, type=click.IntRange(min=1),
              help="People in the synthetic register.")  # fmt: skip
@click.option("--poison", default=0.02, show_default=True, type=click.FloatRange(0, 1),
              help="Share of poison events (all kinds).")  # fmt: skip
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
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from hub.sim.simulator import SimulationReport, produce
    from hub.sim.traffic import Traffic
    from hub.wire.codec import Codec

    traffic = Traffic(Codec(), seed=seed, provinces=provinces, population=population)
    report = SimulationReport()
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False) as bar:
        if register:
            task = bar.add_task("register", total=len(traffic.people), rate="")
            _kafka(
                settings,
                produce(
                    _conn(settings),
                    traffic.register_messages(),
                    progress=lambda n: bar.advance(task, n),
                    report=report,
                ),
            )
        task = bar.add_task("events", total=count, rate="")
        started = time.monotonic()

        def advance(n: int) -> None:
            bar.advance(task, n)
            done = bar.tasks[task].completed
            bar.update(task, rate=f"{done / max(time.monotonic() - started, 1e-9):,.0f} ev/s")

        _kafka(
            settings,
            produce(
                _conn(settings),
                traffic.stream(count, poison),
                rate=rate or None,
                progress=advance,
                report=report,
            ),
        )
    poison_text = ", ".join(f"{k}={v}" for k, v in sorted(report.poison.items())) or "none"
    click.echo(
        f"sent {report.sent - report.register} events ({len(report.valid_event_ids)} valid; "
        f"poison: {poison_text}) and {report.register} register records "
        f"for provinces {', '.join(traffic.province_codes)} in {report.seconds:.1f}s"
    )


@cli.group()
def units() -> None:
    """Administrative units: legacy (pre-July-2025) → 2025 province and commune codes."""


@units.command("convert")
@click.argument("codes", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
def units_convert(codes: tuple[str, ...], as_json: bool) -> None:
    """Print the 2025 province and commune of each legacy commune CODE.

    A legacy commune that was split among several 2025 communes is marked split, with the
    candidates and the rule that picks one (the dataset's default ward). Exit 1 when a code
    does not exist.
    """
    import json

    from hub.domain.units import admin_units
    from hub.ops.units import conversion_rows, describe

    rows = conversion_rows(admin_units(), codes)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            click.echo(describe(row))
    if any("error" in row for row in rows):
        sys.exit(1)


@cli.group()
def dlq() -> None:
    """Inspect and replay dead letters (dlq.<source topic>)."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def dlq_list(settings: Settings, as_json: bool) -> None:
    """Show dead letters grouped by source topic, stage and reason, with an example detail."""
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from hub.ops.dlq import count_letters

    groups = _kafka(settings, count_letters(_conn(settings)))
    if as_json:
        click.echo(json.dumps([asdict(g) for g in groups], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"dead letters ({sum(g.count for g in groups)})")
    for col in ("source topic", "stage", "reason", "count", "example"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for g in groups:
        table.add_row(g.topic, g.stage, g.reason, str(g.count), g.example[:80])
    Console(width=160).print(table)


@dlq.command("replay")
@click.option("--topic", required=True,
              help="Source, agency task or acknowledgement topic whose dead letters to "
                   "re-inject.")  # fmt: skip
@click.option("--reason", default=None, help="Only dead letters with this reason code.")
@click.option("--since", default=None, metavar="TIME",
              help="Only dead letters that failed at or after TIME (ISO 8601, e.g. "
                   "2026-11-30T13:00+07:00; UTC when it has no offset): those since a bad "
                   "deploy or a reference-data gap began.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; send nothing.")
@click.pass_obj
def dlq_replay(settings: Settings, topic: str, reason: str | None, since: str | None,
               dry_run: bool) -> None:  # fmt: skip
    """Re-inject dead letters into their topic after a fix (each one once).

    Source topics go back through the worker; agency task topics (dead-lettered by
    `hub deliver`) are delivered again; acknowledgements whose task had not come
    (ack_without_task) go back to their cases once the task is in.

    Replayed dead letters are remembered in HUB_HOME/dlq-replayed.json; replaying again sends
    only dead letters that arrived since.
    """
    from hub.ops.dlq import DEAD_LETTERED, Ledger, replay, select_letters

    if topic not in DEAD_LETTERED:
        raise click.BadParameter(f"{topic!r} has no dead letters to replay; one of: "
                                 f"{', '.join(DEAD_LETTERED)}")  # fmt: skip
    try:
        after = datetime.fromisoformat(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(f"{since!r} is not an ISO 8601 time",
                                 param_hint="--since") from exc  # fmt: skip
    if after is not None and after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    ledger = Ledger(settings.home / "dlq-replayed.json")
    chosen = _kafka(settings, select_letters(_conn(settings), topic, reason, ledger, after))
    what = (f"{len(chosen)} dead letter(s) of {topic}"
            + (f" with reason {reason}" if reason else "")
            + (f" since {after.isoformat()}" if after else ""))  # fmt: skip
    if dry_run or not chosen:
        click.echo(f"would replay {what}" if dry_run else f"nothing to replay: 0 new {what[2:]}")
        return
    sent = _kafka(settings, replay(_conn(settings), chosen, ledger))
    click.echo(f"replayed {sent} dead letter(s) into {topic}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Broker, topics, consumer lag, worker and central store at a glance."""
    import json

    from hub.ops.status import gather
    from hub.ops.view import status_tables

    _conn(settings)
    st = asyncio.run(gather(settings))
    if as_json:
        click.echo(json.dumps(st.as_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        from rich.console import Console

        console = Console(width=140)
        for table in status_tables(st):
            console.print(table)
    if not st.broker_up:
        sys.exit(1)


@cli.group(invoke_without_command=True)
@click.option("--period", default=None,
              help="2026-11 (month), 2026-Q4 (quarter), 2026 (year) or 2026-10-01..2026-12-31; "
                   "default the current month.")  # fmt: skip
@click.option("--province", default=None, callback=lambda _c, _p, v: _province_2025(v),
              help="Only this 2025 province code (e.g. 79).")  # fmt: skip
@click.option("--procedure", default=None, help="Only this procedure code.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
              default=None,
              help="Compute 'overdue now' as of this moment (e.g. a month's last second), "
                   "ISO 8601 with offset; default now.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def kpi(ctx: click.Context, period: str | None, province: str | None, procedure: str | None,
        as_of: datetime | None, as_json: bool) -> None:  # fmt: skip
    """Dossier indicators from the central store: received (by channel), resolved, resolved on
    time, overdue now, on-time and online shares, per province and procedure.

    The same figures whatever the number of workers (docs/INDICATORS.md defines each one).
    `hub kpi serve` exports them for Prometheus.
    """
    if ctx.invoked_subcommand is not None:
        return
    from hub.ops.kpi import kpi_report
    from hub.ops.view import kpi_table

    now = datetime.now(UTC)
    if as_of is not None:
        now = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)

    def report(store: Any, chosen: Any) -> dict[str, Any]:
        return kpi_report(store, chosen, now, province, procedure)

    _store_report(ctx.obj, period, now, as_json, kpi_table, report)


def _province_2025(code: str | None) -> str | None:
    """``--province``: a province of the 2025 system (34 since July 2025), or a usage error
    (a legacy or mistyped code would show an empty report as if nothing happened there)."""
    from hub.domain.units import admin_units

    if code is not None and code not in admin_units().provinces:
        raise click.BadParameter(
            f"{code!r} is not a 2025 province code (e.g. 01 Hà Nội, 79 Hồ Chí Minh); "
            "`hub units convert` maps legacy codes"
        )
    return code


def _store_report(settings: Settings, period: str | None, now: datetime, as_json: bool,
                  table: Callable[[dict[str, Any]], Any],
                  report_of: Callable[[Any, Any], dict[str, Any]]) -> None:  # fmt: skip
    """A report over ``--period`` from the central store, as JSON or a table (kpi, quality)."""
    import json

    from hub.domain.indicators import Period
    from hub.store.sql import StoreError, open_store

    try:
        chosen = Period.parse(period) if period else Period.current_month(now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--period") from exc
    try:
        store = open_store(settings.resolved_store_url)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        report = report_of(store, chosen)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    from rich.console import Console

    Console(width=140).print(table(report))


@cli.command()
@click.option("--period", default=None,
              help="2026-11, 2026-Q4, 2026 or FROM..TO dates; default this month.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def quality(settings: Settings, period: str | None, as_json: bool) -> None:
    """Data quality (correct, sufficient, clean, alive, unified, shared) per source and province,
    over every event that arrived in the period, stored or dead-lettered, from the central store.
    """
    from hub.ops.quality import quality_report
    from hub.ops.view import quality_table

    now = datetime.now(UTC)
    _store_report(settings, period, now, as_json, quality_table,
                  lambda store, chosen: quality_report(store, chosen, now))  # fmt: skip


@kpi.command("serve")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default HUB_KPI_PORT).")  # fmt: skip
@click.pass_obj
def kpi_serve(settings: Settings, port: int | None) -> None:
    """Export the hub-wide indicators (current month and year, per province) on /metrics.

    One exporter for the whole hub, reading the central store on each scrape: run one, scrape
    it (deploy/prometheus/prometheus.yml, job hub-kpi).
    """
    from hub.ops.kpi import serve

    chosen = port or settings.kpi_port
    _port_free(settings.metrics_bind, chosen, "--port" if port else "HUB_KPI_PORT")
    click.echo(f"hub kpi exporter on {settings.metrics_bind}:{chosen}/metrics")
    with contextlib.suppress(KeyboardInterrupt):
        serve(settings.resolved_store_url, chosen, settings.metrics_bind)


@cli.group(invoke_without_command=True)
@click.pass_context
def gateway(ctx: click.Context) -> None:
    """HTTP ingest: POST /v1/events/{source} (JSON) → validated → the source topic.

    Runs the gateway on HUB_GATEWAY_BIND:HUB_GATEWAY_PORT. API keys live hashed in
    HUB_GATEWAY_CREDENTIALS (default HUB_HOME/gateway-keys.json); create them with
    `hub gateway add-key`. FHIR R4 resources at POST /v1/fhir (config HUB_FHIR_CONFIG, default
    HUB_HOME/fhir.json). OpenAPI document at /openapi.json; /healthz, /readyz, /metrics.
    """
    if ctx.invoked_subcommand is not None:
        return
    import signal
    from datetime import timedelta

    from aiohttp import web

    from connectors.ingest.credentials import Credentials, CredentialsError
    from connectors.ingest.fhir import FhirConfig, FhirConfigError
    from connectors.ingest.gateway import Gateway, Limits
    from hub.store.ingest import IngestLedger
    from hub.store.sql import StoreError, open_store

    settings: Settings = ctx.obj
    path = _credentials_path(settings)
    try:
        creds = Credentials.load(path)
    except CredentialsError as exc:
        raise click.ClickException(str(exc)) from exc
    if not creds.entries:
        click.echo(f"warning: no API keys in {path}; every request gets 401 "
                   "(create one with `hub gateway add-key`)", err=True)  # fmt: skip
    fhir_path = settings.fhir_config or settings.home / "fhir.json"
    try:
        fhir = FhirConfig.load(fhir_path)
    except FhirConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not fhir.facilities:
        click.echo(f"warning: no facilities in {fhir_path}; POST /v1/fhir refuses every "
                   "resource (see README, 'Connecting an agency system')", err=True)  # fmt: skip
    try:
        store = open_store(settings.resolved_store_url)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    ledger = IngestLedger(store, timedelta(days=settings.gateway_idempotency_days))
    limits = Limits(max_body=settings.gateway_max_body, max_events=settings.gateway_max_events,
                    rate=settings.gateway_rate)  # fmt: skip
    gw = Gateway(_conn(settings), creds, settings.gateway_max_body, fhir,
                 ledger=ledger, limits=limits, credentials_path=path)  # fmt: skip

    async def on_start(_: web.Application) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, gw.reload_credentials)
        await asyncio.to_thread(ledger.prune, datetime.now(UTC))

    app = gw.app()
    app.on_startup.append(on_start)
    _port_free(settings.gateway_bind, settings.gateway_port, "HUB_GATEWAY_PORT")
    web.run_app(app, host=settings.gateway_bind, port=settings.gateway_port,
                ssl_context=_gateway_tls(settings))  # fmt: skip
    store.close()


def _gateway_tls(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS (and mutual TLS) of the gateway from its settings; a wrong file is named."""
    cert, key, client_ca = (settings.gateway_tls_cert, settings.gateway_tls_key,
                            settings.gateway_client_ca)  # fmt: skip
    if cert is None and key is None:
        if client_ca is not None:
            raise click.ClickException("HUB_GATEWAY_CLIENT_CA: needs HTTPS (HUB_GATEWAY_TLS_CERT "
                                       "and HUB_GATEWAY_TLS_KEY)")  # fmt: skip
        return None
    if cert is None or key is None:
        missing = "HUB_GATEWAY_TLS_KEY" if key is None else "HUB_GATEWAY_TLS_CERT"
        raise click.ClickException(f"{missing}: required with the other half (HTTPS needs both)")
    try:
        return server_context(cert, key, client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise click.ClickException(
            f"HUB_GATEWAY_TLS_CERT/HUB_GATEWAY_TLS_KEY/HUB_GATEWAY_CLIENT_CA: {exc}"
        ) from exc


def _credentials_path(settings: Settings) -> Path:
    return settings.gateway_credentials or settings.home / "gateway-keys.json"


@gateway.command("add-key")
@click.argument("name")
@click.option("--source", "sources", multiple=True, required=True,
              help="Source it may publish (e.g. civil.birth), or '*' (repeatable).")  # fmt: skip
@click.option("--province", "provinces", multiple=True, required=True,
              help="2025 province code it may publish for, or '*' (repeatable).")  # fmt: skip
@click.option("--facility", "facilities", multiple=True,
              help="FHIR: facility code it speaks for (repeatable); without one, POST /v1/fhir "
                   "is refused.")  # fmt: skip
@click.option("--expires", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day the key works (YYYY-MM-DD).")  # fmt: skip
@click.option("--client-cert-subject", default=None,
              help='Bind the key to a client certificate subject (RFC 4514, e.g. '
              '"CN=hotich-79,O=So Tu phap TP HCM"): with mutual TLS on (HUB_GATEWAY_CLIENT_CA), '
              "the key works only on a connection with that certificate.")  # fmt: skip
@click.pass_obj
def gateway_add_key(settings: Settings, name: str, sources: tuple[str, ...],
                    provinces: tuple[str, ...], facilities: tuple[str, ...],
                    expires: datetime | None, client_cert_subject: str | None) -> None:  # fmt: skip
    """Create an API key for NAME; prints it once and stores only its hash (file mode 0600).

    A running gateway picks it up on SIGHUP.
    """
    from connectors.ingest.credentials import Credentials, CredentialsError

    path = _credentials_path(settings)
    try:
        last_day = expires.date() if expires else None
        if client_cert_subject is not None:
            client_cert_subject = subject_name(client_cert_subject).rfc4514_string()
        creds = Credentials.load(path)
        key = creds.add(path, name, list(sources), list(provinces), list(facilities), last_day,
                        client_cert_subject)  # fmt: skip
    except (CredentialsError, TlsError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(key)


@gateway.command("revoke-key")
@click.argument("name")
@click.pass_obj
def gateway_revoke_key(settings: Settings, name: str) -> None:
    """Remove NAME's key; a running gateway stops accepting it on SIGHUP."""
    from connectors.ingest.credentials import Credentials, CredentialsError

    path = _credentials_path(settings)
    try:
        removed = Credentials.load(path).revoke(path, name)
    except CredentialsError as exc:
        raise click.ClickException(str(exc)) from exc
    if not removed:
        raise click.ClickException(f"no key named {name!r} in {path}")
    click.echo(f"revoked {name}; send SIGHUP to a running gateway (kill -HUP PID)")


@gateway.command("audit")
@click.option("--credential", default=None, help="Only this key's requests.")
@click.option("--since", type=click.DateTime(), default=None,
              help="From this moment (UTC), e.g. 2026-11-28 or 2026-11-28T08:00:00.")  # fmt: skip
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Most rows shown.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def gateway_audit(settings: Settings, credential: str | None, since: datetime | None,
                  limit: int, as_json: bool) -> None:  # fmt: skip
    """The gateway's audit trail: every ingest request with its answer, from the central store."""
    import json
    from datetime import timedelta

    from hub.store.ingest import IngestLedger
    from hub.store.sql import StoreError, open_store

    try:
        store = open_store(settings.resolved_store_url)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        moment = since.replace(tzinfo=UTC) if since else None
        rows = IngestLedger(store, timedelta(days=1)).trail(credential, moment, limit)
    finally:
        store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row.as_dict(), ensure_ascii=False))
        else:
            click.echo(f"{row.at.isoformat()} {row.credential or '-'} {row.remote} "
                       f"{row.method} {row.path} {row.status} events={len(row.event_ids)} "
                       f"sha256={row.body_sha256[:12]}")  # fmt: skip


@cli.command()
@click.option("--group", default=None,
              help="Consumer group prefix (default HUB_APP_ID-delivery).")  # fmt: skip
@click.option("--new-secret", is_flag=True,
              help="Print a new signing secret (whsec_…, 32 random bytes) and exit.")  # fmt: skip
@click.pass_obj
def deliver(settings: Settings, group: str | None, new_secret: bool) -> None:
    """Deliver agency tasks to each agency's HTTPS endpoint, signed; acks close the cases.

    Endpoints, key ids and signing secrets come from HUB_DELIVERY_ENDPOINTS (default
    HUB_HOME/agency-endpoints.json). Failed attempts are retried with backoff
    (HUB_DELIVERY_ATTEMPTS, HUB_DELIVERY_BACKOFF_S); a refused or undeliverable task goes to
    dlq.<agency topic>. Metrics on HUB_DELIVERY_METRICS_PORT. Stops cleanly on Ctrl-C.

    Deliveries are signed as Standard Webhooks (webhook-id = the task id, webhook-timestamp,
    webhook-signature); redirects are refused, endpoints are https:// (http:// for loopback).
    """
    if new_secret:
        from connectors.delivery.signing import new_secret as make_secret

        click.echo(make_secret())
        return
    from connectors.delivery.run import run_delivery
    from connectors.delivery.webhook import EndpointsError

    _port_free(settings.metrics_bind, settings.delivery_metrics_port, "HUB_DELIVERY_METRICS_PORT")
    try:
        asyncio.run(run_delivery(settings, group or f"{settings.app_id}-delivery"))
    except (EndpointsError, KafkaSettingsError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        pass


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", required=True, type=click.Choice(SOURCE_LABELS),
              help="Whose topic the records go to (src.<SOURCE>.v1).")  # fmt: skip
@click.pass_obj
def import_(settings: Settings, file: Path, source: str) -> None:
    """Import digitised records from FILE (.csv with a header, or .jsonl) into SOURCE's topic.

    Valid rows are produced; rejected rows go with their errors to FILE.rejects.jsonl. An
    interrupted import resumes where it stopped (checkpoint FILE.import-state.json).
    """
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from connectors.ingest.importer import ImportFailed, import_file

    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn()) as bar:  # fmt: skip
        task = bar.add_task(f"importing {file.name}", total=None, info="")

        def progress(produced: int, rejected: int) -> None:
            rate = (produced + rejected) / max(time.monotonic() - started, 1e-9)
            bar.update(task, info=f"{produced} produced, {rejected} rejected, {rate:,.0f} rows/s")

        try:
            state = _kafka(settings, import_file(file, source, _conn(settings), progress))
        except ImportFailed as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{file.name}: {state.produced} rows produced, {state.rejected} rejected "
               f"(see {file.name}.rejects.jsonl), through line {state.line}")  # fmt: skip


@cli.command()
@click.option("--duration", default=60.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Seconds of traffic.")  # fmt: skip
@click.option("--rate", default=200.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Events per second.")  # fmt: skip
@click.option("--provinces", default=5, show_default=True, type=click.IntRange(1, 34),
              help="Provinces publishing.")  # fmt: skip
@click.option("--poison", default=0.02, show_default=True, type=click.FloatRange(0, 1),
              help="Share of poison events.")  # fmt: skip
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Random seed of the traffic (default: a new one each run; event ids must not repeat "
    "a previous run's, or the store rightly refuses them as duplicates).",
)
@click.pass_obj
def demo(
    settings: Settings,
    duration: float,
    rate: float,
    provinces: int,
    poison: float,
    seed: int | None,
) -> None:
    """Run the whole hub here: broker, topics, worker, traffic, agencies; then a summary.

    Starts the local broker if none runs (and stops it at the end), runs one `hub worker`
    on the embedded SQLite store, publishes realistic traffic with poison of every kind,
    shows live figures, drains, shuts down cleanly and prints what happened.
    """
    from rich.console import Console

    from hub.sim.demo import Demo, DemoOptions, summary_tables

    console = Console(width=120)
    if seed is None:
        import random

        seed = random.SystemRandom().randrange(10**9)
    options = DemoOptions(duration=duration, rate=rate, provinces=provinces, poison=poison,
                          seed=seed)  # fmt: skip
    try:
        result = Demo(settings, options, console).run()
    except (kafka_local.BrokerError, RuntimeError, OSError, KafkaError, KafkaSettingsError) as exc:
        raise click.ClickException(f"demo stopped: {exc}") from exc
    for table in summary_tables(result, options):
        console.print(table)
    if result.worker_exit != 0 or result.leftovers:
        raise click.ClickException("the worker did not shut down cleanly")


@cli.command()
@click.option("--events", default=200_000, show_default=True, type=click.IntRange(min=1),
              help="Events pre-loaded.")  # fmt: skip
@click.option("--runs", default=3, show_default=True, type=click.IntRange(min=1),
              help="Runs per contender (median).")  # fmt: skip
@click.option("--cap", default=45.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds of processing per run, after which a contender's rate is taken over "
                   "what it stored so far (keeps the full run under 20 minutes).")  # fmt: skip
@click.option("--rate", default=5000.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Offered events/s for the latency measurement.")  # fmt: skip
@click.option("--latency-seconds", default=20.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds of live traffic for the latency measurement.")  # fmt: skip
@click.option("--quick", is_flag=True, help="Small and fast: 3,000 events, one run each.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Directory for results.json, results.md and throughput.png.")  # fmt: skip
@click.pass_obj
def bench(
    settings: Settings,
    events: int,
    runs: int,
    cap: float,
    rate: float,
    latency_seconds: float,
    quick: bool,
    as_json: bool,
    out: Path | None,
) -> None:
    """Measure the hub against Kafka's and Python's ceilings and a naive faust agent.

    Pre-loads EVENTS encoded events into the source topics of the running local broker, then
    measures side by side: (a) Kafka's perf tools, (b) a bare aiokafka pass-through, (c) the
    hub worker (1 and 2 processes), (d) the same pipeline in Quix Streams, (e) a naive faust
    agent, (f) a faust agent that only counts (faust's own ceiling), on faust's path and on the
    worker's hubkafka:// transport; and (c)'s occurred → stored latency at a fixed offered rate,
    with one worker and with two in one group. Prints a table (or --json). See
    docs/BENCHMARKS.md.
    """
    import json
    import time

    from hub.bench import suite
    from hub.bench.report import markdown, payload, write
    from hub.bench.runner import Bench

    if quick:
        events, runs, cap, rate, latency_seconds = suite.QUICK
    started = time.monotonic()
    try:
        b = Bench(settings, events, runs, cap, lambda text: click.echo(f"bench: {text}", err=True))
    except (kafka_local.BrokerError, OSError, KafkaError) as exc:
        raise click.ClickException(f"bench cannot start: {exc} (is the broker running? "
                                   "`hub kafka status`)") from exc  # fmt: skip
    try:
        results = suite.run(b, rate, latency_seconds)
    except (kafka_local.BrokerError, RuntimeError, OSError, KafkaError) as exc:
        raise click.ClickException(f"bench stopped: {exc}") from exc
    finally:
        b.close()
    command = suite.command_line(events, runs, cap, rate, latency_seconds, quick)
    data = payload(results, command, events, runs, time.monotonic() - started)
    if out is not None:
        write(out, data, results)
    click.echo(json.dumps(data, indent=2) if as_json else markdown(results))


def _check_partitions(settings: Settings) -> None:
    """Refuse to start a worker whose HUB_PARTITIONS differs from the topics' partitions."""
    from hub.kafka.admin import partition_counts, partitions_problem

    # An unreachable broker is one line and exit 1 here (faust would print a traceback and
    # exit too); docker-compose starts workers once the brokers are healthy and restarts them
    # on failure.
    counts = _kafka(settings, partition_counts(_conn(settings), [t.value for t in SourceTopic]))
    problem = partitions_problem(counts, settings.partitions)
    if problem is not None:
        raise click.ClickException(problem)


def _conn(settings: Settings) -> KafkaConnection:
    """The Kafka connection of the settings; a wrong setting is one line naming it."""
    try:
        return connection(settings)
    except KafkaSettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _port_free(host: str, port: int, setting: str) -> None:
    """Refuse to start a server whose port another process holds: one line naming the address
    and the setting that chose it (the server would fail later, with a traceback)."""
    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers themselves bind: a port left in TIME_WAIT is free, a listening one not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({setting}): {exc.strerror or exc}"
            ) from exc


def _kafka(settings: Settings, coro: Coroutine[Any, Any, T]) -> T:
    """Run a Kafka coroutine; an unreachable broker is a one-line error, not a traceback."""
    try:
        return asyncio.run(coro)
    except (OSError, KafkaError) as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {_conn(settings).describe()}: {exc} (is it running? "
            "`hub kafka status`)"
        ) from exc


def main() -> None:
    install_log_redaction()
    cli(prog_name="hub")
