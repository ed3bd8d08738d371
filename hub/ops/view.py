"""Terminal tables (rich) for `hub status` and the demo's summary."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from hub.kafka.access import Access
from hub.ops.status import HubStatus
from hub.redaction import redact


def status_tables(st: HubStatus) -> list[Table]:
    overview = Table(title="Lienthong Hub status", show_header=False)
    overview.add_row("broker", f"{st.broker} — {'up' if st.broker_up else 'DOWN'}")
    overview.add_row("worker", f"{st.worker_metrics} — {'up' if st.worker_up else 'not running'}")
    overview.add_row("store", redact(st.store_url))
    for err in st.errors:
        overview.add_row("[red]problem[/]", err)
    tables = [overview]
    if st.messages:
        topics = Table(title="topics")
        for col in ("topic", "messages", "consumer lag"):
            topics.add_column(col, justify="left" if col == "topic" else "right")
        for topic, n in st.messages.items():
            lag = st.lag.get(topic)
            topics.add_row(topic, str(n), "" if lag is None else str(lag))
        tables.append(topics)
    if st.store:
        store = Table(title="central store")
        store.add_column("table")
        store.add_column("rows", justify="right")
        store.add_row("events", str(st.store.get("events", 0)))
        for kind, n in st.store.get("events_by_type", {}).items():
            store.add_row(f"  {kind}", str(n))
        store.add_row("citizens", str(st.store.get("citizens", 0)))
        store.add_row("dossiers", str(st.store.get("dossiers", 0)))
        for state, n in st.store.get("cases_by_status", {}).items():
            store.add_row(f"interconnection cases {state}", str(n))
        tables.append(store)
    return tables


def kpi_table(report: dict[str, Any]) -> Table:
    """``hub kpi``: one row per province and a total."""
    table = Table(title=f"Dossier indicators {report['period']} (as of {report['as_of'][:16]})")
    for col in ("province", "received", "online share", "resolved", "on time", "on-time share",
                "overdue now"):  # fmt: skip
        table.add_column(col, justify="left" if col == "province" else "right")

    def share(value: float | None) -> str:
        return "–" if value is None else f"{value:.1%}"

    rows = [*report["by_province"].items(), ("all", report["total"])]
    for name, f in rows:
        table.add_row(name, str(f["received"]), share(f["online_share"]), str(f["resolved"]),
                      str(f["resolved_on_time"]), share(f["on_time_share"]),
                      str(f["overdue_now"]))  # fmt: skip
    return table


def quality_table(report: dict[str, Any]) -> Table:
    """``hub quality``: one row per source and province, shares OK per dimension."""
    dims = list(report["dimensions"])
    table = Table(title=f"Data quality {report['period']}: {report['events']} events arrived")
    for col in ("source", "province", "events", "dead letters", *dims):
        table.add_column(col, justify="left" if col in ("source", "province") else "right")
    for g in report["by_source_and_province"]:
        table.add_row(g["source"], g["province"], str(g["events"]), str(g["dead_letters"]),
                      *(f"{g['dimensions'][d]:.1%}" for d in dims))  # fmt: skip
    return table


def access_table(access: Access) -> Table:
    """Users and the ACLs applied to their principals (`hub kafka users list`)."""
    table = Table(title="Kafka principals and ACLs", title_justify="left")
    for col in ("principal", "SCRAM", "resource", "pattern", "name", "operations"):
        table.add_column(col)
    principals = sorted(set(access.users) | set(access.acls))
    for principal in principals:
        rows: dict[tuple[str, str, str], list[str]] = {}
        for acl, permission in access.acls.get(principal, []):
            op = acl.operation if permission == "ALLOW" else f"{acl.operation} ({permission})"
            rows.setdefault((acl.resource, acl.pattern, acl.name), []).append(op)
        mechanisms = ", ".join(access.users.get(principal, [])) or "-"
        if not rows:
            table.add_row(principal, mechanisms, "-", "-", "-", "(super user or none)")
        for i, ((resource, pattern, name), ops) in enumerate(sorted(rows.items())):
            table.add_row(principal if i == 0 else "", mechanisms if i == 0 else "", resource,
                          pattern, name, ", ".join(sorted(ops)))  # fmt: skip
    return table
