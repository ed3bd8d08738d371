"""Working days on the Vietnamese public-holiday calendar, for interconnection deadlines.

Deadlines in Decree 63/2024 (and the Law on Civil Status, the Law on Residence and the social
insurance rules it interconnects) run in working days (ngày làm việc): Monday to Friday, less
the public holidays and the days off the Government moves around them (Labour Code 2019,
Art. 112 and the yearly Prime Minister's notices). The calendar comes from the maintained
``holidays`` package (its Vietnam calendar includes the lunar New Year and the substituted
days off), never a hand-typed list.

Counting: the day the dossier is received is day 0; the deadline is the end (midnight, Vietnam
time) of the n-th working day after it. ``n = 0`` means the same working day (or the next one
when the dossier arrived on a day off).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from importlib.metadata import version

import holidays

VIETNAM = timezone(timedelta(hours=7), "ICT")
# Read once: importlib.metadata parses the package's METADATA file on every call (py-spy showed
# it at 54% of a worker's time when each agency task read it; docs/BENCHMARKS.md).
HOLIDAYS_VERSION = version("holidays")


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("VN", years=year))


def load(*years: int) -> None:
    """Read the calendars of ``years`` now: the package imports its country modules on the first
    lookup (~0.1 s here), which would otherwise stall the first batch with a deadline."""
    for year in years:
        _public_holidays(year)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _public_holidays(day.year)


@lru_cache(maxsize=4096)
def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself, or the next working day,
    for ``days == 0``)."""
    current = start
    if days == 0:
        while not is_working_day(current):
            current += timedelta(days=1)
        return current
    counted = 0
    while counted < days:
        current += timedelta(days=1)
        if is_working_day(current):
            counted += 1
    return current


def due_at(received_at: datetime, working_days: int) -> datetime:
    """When a step received at ``received_at`` with ``working_days`` to act becomes overdue."""
    local_day = received_at.astimezone(VIETNAM).date()
    last_day = add_working_days(local_day, working_days)
    return datetime.combine(last_day + timedelta(days=1), time(0), VIETNAM)


def basis(received_at: datetime, working_days: int) -> str:
    """The deadline's basis in words, with the calendar used (shown in each agency task)."""
    local_day = received_at.astimezone(VIETNAM).date()
    last_day = add_working_days(local_day, working_days)
    years = sorted({local_day.year, last_day.year})
    return (f"{working_days} working days from {local_day.isoformat()} (Vietnam time): due by "
            f"the end of {last_day.isoformat()}; Vietnamese public holidays "
            f"{'-'.join(str(y) for y in years)} from holidays {HOLIDAYS_VERSION}")  # fmt: skip
