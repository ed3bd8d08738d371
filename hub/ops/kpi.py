"""`hub kpi`: dossier indicators for the whole hub, from the central store; and `hub kpi serve`,
the one exporter of hub-wide gauges (workers export only what they themselves did).

Every figure comes from ``dossier_history`` folded by hub/domain/indicators.py, so any number
of workers and any restart agree. Definitions: docs/INDICATORS.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub.domain.indicators import Indicators, Period, indicators
from hub.store.reports import dossier_history
from hub.store.sql import Store, open_store


def total(groups: dict[str, Indicators]) -> Indicators:
    """The groups added up (each dossier is in exactly one group)."""
    out = Indicators()
    for g in groups.values():
        out.received += g.received
        out.resolved += g.resolved
        out.resolved_on_time += g.resolved_on_time
        out.overdue_now += g.overdue_now
        for channel, n in g.received_by_channel.items():
            out.received_by_channel[channel] = out.received_by_channel.get(channel, 0) + n
    return out


def kpi_report(store: Store, period: Period, now: datetime, province: str | None = None,
               procedure: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The indicators of ``period`` as of ``now``: per province, per procedure, and in all."""
    rows = dossier_history(store, period.end, province, procedure)
    by_province = indicators(rows, period, now, "province_code")
    by_procedure = indicators(rows, period, now, "procedure_code")
    by_level = indicators(rows, period, now, "receiving_level")
    return {
        "period": period.label,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "as_of": now.isoformat(),
        "filters": {"province": province, "procedure": procedure},
        "total": total(by_province).as_dict(),
        "by_province": {k: v.as_dict() for k, v in by_province.items()},
        "by_procedure": {k: v.as_dict() for k, v in by_procedure.items()},
        "by_receiving_level": {k: v.as_dict() for k, v in by_level.items()},
    }


GAUGES = {
    "received": "Dossiers received in the period.",
    "resolved": "Dossiers resolved (completed) in the period.",
    "resolved_on_time": "Dossiers resolved in the period by their due time (supplement waits "
                        "excluded).",
    "overdue_now": "Dossiers not resolved and past their due time now.",
    "on_time_share": "Resolved on time / resolved.",
    "online_share": "Received online (partly or fully) / received.",
}  # fmt: skip


class KpiCollector(Collector):
    """Reads the store on each scrape: the current month's and year's indicators per province."""

    def __init__(self, store_url: str, clock: Any = None) -> None:
        self.store_url = store_url
        self.clock = clock or (lambda: datetime.now(UTC))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        month = Period.current_month(now)
        periods = [("month", month), ("year", Period.parse(month.label[:4]))]
        families = {name: GaugeMetricFamily(f"hub_kpi_dossiers_{name}", text,
                                            labels=["province", "period"])
                    for name, text in GAUGES.items()}  # fmt: skip
        channels = GaugeMetricFamily("hub_kpi_dossiers_received_by_channel",
                                     "Dossiers received in the period, by channel.",
                                     labels=["province", "period", "channel"])  # fmt: skip
        store = open_store(self.store_url)
        try:
            for kind, period in periods:
                report = kpi_report(store, period, now)
                for province, figures in report["by_province"].items():
                    for name, family in families.items():
                        value = figures[name]
                        if value is not None:
                            family.add_metric([province, kind], float(value))
                    for channel, n in figures["received_by_channel"].items():
                        channels.add_metric([province, kind, channel], float(n))
        finally:
            store.close()
        yield from families.values()
        yield channels


def serve(store_url: str, port: int, bind: str) -> None:
    """The hub-wide KPI exporter: /metrics on ``bind:port`` until interrupted."""
    registry = CollectorRegistry()
    registry.register(KpiCollector(store_url))
    start_http_server(port, addr=bind, registry=registry)
    while True:
        time.sleep(3600)
