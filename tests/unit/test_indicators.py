"""Dossier indicators from status history (issue 14): periods, the stopped clock, and figures
computed independently from simulated lifecycles."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.calendar import VIETNAM
from hub.domain.enums import DossierStatus
from hub.domain.indicators import HistoryRow, Period, indicators
from hub.sim.dossiers import DossierPlan, plan_dossier

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11", (2026, 11, 1), (2026, 12, 1)),
        ("2026-12", (2026, 12, 1), (2027, 1, 1)),
        ("2026-Q4", (2026, 10, 1), (2027, 1, 1)),
        ("2026-Q1", (2026, 1, 1), (2026, 4, 1)),
        ("2026", (2026, 1, 1), (2027, 1, 1)),
        ("2026-10-15..2026-11-14", (2026, 10, 15), (2026, 11, 15)),
    ],
)
def test_periods_are_vietnam_time_half_open_ranges(
    text: str, start: tuple[int, int, int], end: tuple[int, int, int]
) -> None:
    period = Period.parse(text)
    assert period.start == datetime(*start, tzinfo=VIETNAM)
    assert period.end == datetime(*end, tzinfo=VIETNAM)


@pytest.mark.parametrize("text", ["2026-13", "26-11", "2026-Q5", "2026-11-30..2026-11-01", ""])
def test_bad_periods_are_clear_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"2026|period|month|ends"):
        Period.parse(text)


def row(status: DossierStatus, at: datetime, due: datetime, code: str = "H79.1",
        completed: datetime | None = None) -> HistoryRow:  # fmt: skip
    return HistoryRow(code, "79", "1.001612", "ONLINE_FULL", status.value, at,
                      due - timedelta(days=5), due, completed)  # fmt: skip


def test_a_dossier_waiting_for_a_supplement_past_its_due_date_is_not_overdue() -> None:
    due = NOW - timedelta(days=2)
    history = [row(DossierStatus.RECEIVED, due - timedelta(days=5), due),
               row(DossierStatus.IN_PROGRESS, due - timedelta(days=4), due),
               row(DossierStatus.SUPPLEMENT_REQUESTED, due - timedelta(days=3), due)]  # fmt: skip
    month = Period.current_month(NOW)
    assert indicators(history, month, NOW)["79"].overdue_now == 0
    # The supplement arrives now: 3 days of clock remained, so it is overdue 3 days from now.
    resumed = [*history, row(DossierStatus.IN_PROGRESS, NOW, due)]
    later = NOW + timedelta(days=3)
    assert indicators(resumed, month, later - timedelta(minutes=1))["79"].overdue_now == 0
    assert indicators(resumed, month, later + timedelta(minutes=1))["79"].overdue_now == 1


def test_time_waiting_for_the_citizen_does_not_make_a_completion_late() -> None:
    due = NOW - timedelta(days=10)
    received = due - timedelta(days=5)
    done = due + timedelta(days=2)  # two days after the due date...
    history = [row(DossierStatus.RECEIVED, received, due),
               row(DossierStatus.SUPPLEMENT_REQUESTED, received + timedelta(days=1), due),
               # ...but three days waited for the citizen
               row(DossierStatus.IN_PROGRESS, received + timedelta(days=4), due),
               row(DossierStatus.COMPLETED, done, due, completed=done)]  # fmt: skip
    figures = indicators(history, Period.parse("2026"), NOW)["79"]
    assert (figures.resolved, figures.resolved_on_time) == (1, 1)


def expected_from_plans(plans: list[DossierPlan], period: Period,
                        now: datetime) -> dict[str, Counter[str]]:  # fmt: skip
    """The indicators straight from the generator's plans (not from history rows)."""
    out: dict[str, Counter[str]] = {}
    for plan in plans:
        steps = plan.until(now)
        c = out.setdefault(plan.province_code, Counter())
        if period.start <= plan.received_at < period.end:
            c["received"] += 1
            c["online"] += plan.channel.value.startswith("ONLINE")
        pause = timedelta()
        for (status, at), following in zip(steps, [*steps[1:], None], strict=True):
            if status is DossierStatus.SUPPLEMENT_REQUESTED:
                pause += (following[1] if following else now) - at
        final_status, final_at = steps[-1]
        if final_status is DossierStatus.COMPLETED and period.start <= final_at < period.end:
            c["resolved"] += 1
            c["on_time"] += final_at <= plan.due_at + pause
        waiting = final_status is DossierStatus.SUPPLEMENT_REQUESTED
        open_ = final_status not in (DossierStatus.COMPLETED, DossierStatus.RETURNED)
        if open_ and not waiting and now > plan.due_at + pause and plan.received_at < period.end:
            c["overdue"] += 1
    return out


def rows_of(plans: list[DossierPlan], now: datetime) -> list[HistoryRow]:
    return [
        HistoryRow(p.code, p.province_code, p.procedure_code, p.channel.value, s.value, at,
                   p.received_at, p.due_at, at if s is DossierStatus.COMPLETED else None,
                   p.receiving_level.value)
        for p in plans for s, at in p.until(now)
    ]  # fmt: skip


@pytest.mark.parametrize("period_text", ["2026-11", "2026-10", "2026-Q4", "2026"])
def test_indicators_equal_what_the_generated_lifecycles_say(period_text: str) -> None:
    rng = random.Random(42)
    plans = [plan_dossier(rng, NOW, f"H{p}.{i}", p, "00001", "001303000042")
             for i in range(600) for p in [rng.choice(["01", "79", "48"])]]  # fmt: skip
    period = Period.parse(period_text)
    expected = expected_from_plans(plans, period, NOW)
    got = indicators(rows_of(plans, NOW), period, NOW)
    assert sum(c["received"] for c in expected.values()) > 50 or period_text == "2026-10"
    for province, c in expected.items():
        g = got[province]
        online = sum(n for ch, n in g.received_by_channel.items() if ch.startswith("ONLINE"))
        assert (g.received, online, g.resolved, g.resolved_on_time, g.overdue_now) == (
            c["received"], c["online"], c["resolved"], c["on_time"], c["overdue"],
        ), province  # fmt: skip
    if NOW in period:
        assert any(c["overdue"] for c in expected.values()), "some dossiers are late now"


def test_indicators_per_receiving_level_add_up_to_the_whole() -> None:
    rng = random.Random(7)
    plans = [plan_dossier(rng, NOW, f"H79.{i}", "79", "00001", "001303000042")
             for i in range(300)]  # fmt: skip
    period = Period.parse("2026")
    levels = indicators(rows_of(plans, NOW), period, NOW, "receiving_level")
    whole = indicators(rows_of(plans, NOW), period, NOW)["79"]
    assert set(levels) == {"PROVINCE", "COMMUNE"}
    assert sum(g.received for g in levels.values()) == whole.received
    assert sum(g.resolved for g in levels.values()) == whole.resolved
    assert levels["COMMUNE"].received == sum(
        1 for p in plans if p.receiving_level.value == "COMMUNE" and p.received_at in period
    )
