"""Service indicators of administrative-procedure dossiers, from their status history.

Pure: the rows come from the central store's ``dossier_history`` (every worker writes there), so
any number of workers, and any restart, give the same figures. Definitions, formulas and the
regulations behind them: docs/INDICATORS.md.

- received: dossiers received in the period (by channel);
- resolved: dossiers completed in the period; on time: completed by their effective due time;
- overdue now: not completed or returned, and past their effective due time now;
- effective due time: the due time plus every interval the dossier spent in
  SUPPLEMENT_REQUESTED (the legal clock stops while the citizen supplements documents: Decree
  61/2018 Art. 19 as amended by Decree 107/2021); a dossier waiting for a supplement now is
  not overdue, and once the supplement arrives the remaining time runs on.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from hub.domain.calendar import VIETNAM
from hub.domain.enums import Channel, DossierStatus

ONLINE = frozenset({Channel.ONLINE.value, Channel.ONLINE_PARTIAL.value, Channel.ONLINE_FULL.value})
FINAL = frozenset({DossierStatus.COMPLETED.value, DossierStatus.RETURNED.value})


@dataclass(frozen=True)
class Period:
    """A reporting period, [start, end) in Vietnam time."""

    label: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026-11`` (month), ``2026-Q4`` (quarter), ``2026`` (year) or ``FROM..TO`` (dates,
        both included)."""

        def at(year: int, month: int, day: int = 1) -> datetime:
            return datetime(year, month, day, tzinfo=VIETNAM)

        if m := re.fullmatch(r"(\d{4})", text):
            year = int(m[1])
            return cls(text, at(year, 1), at(year + 1, 1))
        if m := re.fullmatch(r"(\d{4})-Q([1-4])", text):
            year, quarter = int(m[1]), int(m[2])
            start = at(year, 3 * quarter - 2)
            return cls(text, start, at(year + 1, 1) if quarter == 4 else at(year, 3 * quarter + 1))
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            year, month = int(m[1]), int(m[2])
            if not 1 <= month <= 12:
                raise ValueError(f"no month {month} in {text!r}")
            return cls(text, at(year, month), at(year + (month == 12), month % 12 + 1))
        if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})\.\.(\d{4})-(\d{2})-(\d{2})", text):
            start = at(int(m[1]), int(m[2]), int(m[3]))
            end = at(int(m[4]), int(m[5]), int(m[6])) + timedelta(days=1)
            if end <= start:
                raise ValueError(f"{text!r} ends before it starts")
            return cls(text, start, end)
        raise ValueError(f"period {text!r}: use 2026-11, 2026-Q4, 2026 or 2026-10-01..2026-12-31")

    @classmethod
    def current_month(cls, now: datetime) -> Period:
        local = now.astimezone(VIETNAM)
        return cls.parse(f"{local.year}-{local.month:02d}")

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class HistoryRow:
    """One status change of a dossier, as the store keeps it."""

    dossier_code: str
    province_code: str
    procedure_code: str
    channel: str
    status: str
    at: datetime
    received_at: datetime
    due_at: datetime
    completed_at: datetime | None
    receiving_level: str = "UNKNOWN"


@dataclass
class Indicators:
    received: int = 0
    received_by_channel: dict[str, int] = field(default_factory=dict)
    resolved: int = 0
    resolved_on_time: int = 0
    overdue_now: int = 0

    @property
    def on_time_share(self) -> float | None:
        return self.resolved_on_time / self.resolved if self.resolved else None

    @property
    def online_share(self) -> float | None:
        online = sum(n for c, n in self.received_by_channel.items() if c in ONLINE)
        return online / self.received if self.received else None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "on_time_share": self.on_time_share,
                "online_share": self.online_share}  # fmt: skip


@dataclass(frozen=True)
class DossierFacts:
    """What the indicators need of one dossier, folded from its history."""

    province_code: str
    procedure_code: str
    receiving_level: str
    channel: str
    received_at: datetime
    status: str
    completed_at: datetime | None
    effective_due: datetime


def fold(rows: Iterable[HistoryRow], now: datetime) -> dict[str, DossierFacts]:
    """Each dossier's facts: its latest state, and its due time moved by the paused intervals."""
    by_dossier: dict[str, list[HistoryRow]] = defaultdict(list)
    for row in rows:
        by_dossier[row.dossier_code].append(row)
    facts = {}
    for code, history in by_dossier.items():
        history.sort(key=lambda r: r.at)
        paused = timedelta()
        for row, following in zip(history, [*history[1:], None], strict=True):
            if row.status == DossierStatus.SUPPLEMENT_REQUESTED.value:
                until = following.at if following is not None else max(now, row.at)
                paused += until - row.at
        last = history[-1]
        completed = next((r.completed_at or r.at for r in reversed(history)
                          if r.status == DossierStatus.COMPLETED.value), None)  # fmt: skip
        facts[code] = DossierFacts(last.province_code, last.procedure_code,
                                   last.receiving_level, history[0].channel,
                                   history[0].received_at, last.status, completed,
                                   last.due_at + paused)  # fmt: skip
    return facts


def indicators(rows: Iterable[HistoryRow], period: Period, now: datetime,
               key: str = "province_code") -> dict[str, Indicators]:  # fmt: skip
    """Indicators per ``key`` (province_code, procedure_code or receiving_level) for
    ``period``, as of ``now``."""
    out: dict[str, Indicators] = defaultdict(Indicators)
    for facts in fold(rows, now).values():
        group = out[getattr(facts, key)]
        if facts.received_at in period:
            group.received += 1
            group.received_by_channel[facts.channel] = (
                group.received_by_channel.get(facts.channel, 0) + 1
            )
        if facts.completed_at is not None and facts.completed_at in period:
            group.resolved += 1
            group.resolved_on_time += facts.completed_at <= facts.effective_due
        if (
            facts.status not in FINAL
            and facts.received_at < period.end
            and (facts.status != DossierStatus.SUPPLEMENT_REQUESTED.value)
            and now > facts.effective_due
        ):
            group.overdue_now += 1
    return {k: v for k, v in sorted(out.items())}


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
