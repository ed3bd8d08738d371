"""Simulated procedure dossiers with a lifecycle, so the demo's indicators describe real dossiers
and tests can compute the expected indicators from the plans themselves.

received → accepted → in progress → (supplement requested → in progress)? → completed | returned,
some late, some still open. Deadlines are the procedure's processing time in working days on
the public-holiday calendar (hub/domain/calendar.py). The catalogue below is illustrative: its
codes are shaped like the National Database of Administrative Procedures' and its times like
the published ones, but it is simulation data, not reference data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.domain import calendar
from hub.domain.enums import Channel, DossierStatus, ReceivingLevel

# (procedure code, processing time in working days, share of dossiers, receiving level)
PROCEDURES: list[tuple[str, int, float, ReceivingLevel]] = [
    ("2.000815", 0, 0.30, ReceivingLevel.COMMUNE),  # certified copies: the same working day
    ("1.001612", 3, 0.25, ReceivingLevel.COMMUNE),  # household business registration
    ("2.001035", 10, 0.20, ReceivingLevel.PROVINCE),  # judicial record certificate
    ("1.010732", 15, 0.15, ReceivingLevel.COMMUNE),  # construction permit, detached house
    ("1.004873", 5, 0.10, ReceivingLevel.PROVINCE),  # land-use certificate correction
]
# How dossiers arrive (simulation shares).
CHANNELS: list[tuple[Channel, float]] = [
    (Channel.IN_PERSON, 0.45), (Channel.ONLINE_PARTIAL, 0.20), (Channel.ONLINE_FULL, 0.30),
    (Channel.POSTAL, 0.05),
]  # fmt: skip
SUPPLEMENT_SHARE = 0.15
LATE_SHARE = 0.15
RETURNED_SHARE = 0.08


@dataclass(frozen=True)
class DossierPlan:
    """One dossier's whole life: what the simulator emits, and what a test checks against."""

    code: str
    province_code: str
    commune_code: str
    procedure_code: str
    receiving_level: ReceivingLevel
    channel: Channel
    applicant_id: str
    received_at: datetime
    due_at: datetime
    steps: tuple[tuple[DossierStatus, datetime], ...]

    def until(self, now: datetime) -> tuple[tuple[DossierStatus, datetime], ...]:
        """The steps that have happened by ``now``."""
        return tuple(s for s in self.steps if s[1] <= now)


def _pick(rng: random.Random, weighted: list[tuple[object, float]]) -> object:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def plan_dossier(rng: random.Random, now: datetime, code: str, province: str, commune: str,
                 applicant: str) -> DossierPlan:  # fmt: skip
    """A dossier received in the last 40 days, its steps drawn until (and past) ``now``."""
    procedure, days, _, level = rng.choices(PROCEDURES, weights=[p[2] for p in PROCEDURES])[0]
    channel = _pick(rng, CHANNELS)  # type: ignore[arg-type]
    assert isinstance(channel, Channel)
    received = (now - timedelta(days=rng.uniform(0, 40))).replace(microsecond=0)
    due = calendar.due_at(received, days)
    at = received
    steps: list[tuple[DossierStatus, datetime]] = [(DossierStatus.RECEIVED, at)]
    at += timedelta(minutes=rng.uniform(5, 240))
    steps.append((DossierStatus.ACCEPTED, at))
    at += timedelta(minutes=rng.uniform(10, 600))
    steps.append((DossierStatus.IN_PROGRESS, at))
    paused = timedelta()
    if rng.random() < SUPPLEMENT_SHARE:
        at += timedelta(hours=rng.uniform(1, 30))
        steps.append((DossierStatus.SUPPLEMENT_REQUESTED, at))
        wait = timedelta(days=rng.uniform(1, 12))
        paused = wait
        at += wait
        steps.append((DossierStatus.IN_PROGRESS, at))
    effective_due = due + paused
    if rng.random() < LATE_SHARE:
        end = effective_due + timedelta(days=rng.uniform(0.2, 6))
    else:
        end = at + (effective_due - at) * rng.uniform(0.1, 0.95) if effective_due > at else at
    end = max(end, at + timedelta(minutes=1))
    final = DossierStatus.RETURNED if rng.random() < RETURNED_SHARE else DossierStatus.COMPLETED
    steps.append((final, end))
    return DossierPlan(code, province, commune, procedure, level, channel, applicant, received,
                       due,
                       tuple((s, t.replace(microsecond=t.microsecond // 1000 * 1000))
                             for s, t in steps))  # fmt: skip
