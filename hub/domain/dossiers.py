"""Procedure-dossier indicators per province (Decree 42/2022): received, completed, completed
on time, overdue now, share received online. Pure: the worker feeds events in."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.domain.enums import Channel, DossierStatus
from hub.domain.events import ProcedureDossierEvent

FINAL = {DossierStatus.COMPLETED.value, DossierStatus.RETURNED.value}


@dataclass
class DossierKpis:
    received: Counter[str] = field(default_factory=Counter)
    online: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    on_time: Counter[str] = field(default_factory=Counter)

    def record(self, event: ProcedureDossierEvent, province: str) -> list[str]:
        """Count the event; return the indicators it moved (received, online, completed,
        on_time) so the worker can move the matching metrics."""
        moved: list[str] = []
        if event.status is DossierStatus.RECEIVED:
            moved.append("received")
            if event.channel is Channel.ONLINE:
                moved.append("online")
        elif event.status is DossierStatus.COMPLETED and event.completed_at is not None:
            moved.append("completed")
            if event.completed_at <= event.due_at:
                moved.append("on_time")
        for name in moved:
            getattr(self, name)[province] += 1
        return moved

    def online_share(self, province: str) -> float:
        return self.online[province] / self.received[province] if self.received[province] else 0.0

    def on_time_share(self, province: str) -> float:
        done = self.completed[province]
        return self.on_time[province] / done if done else 0.0


def dossier_state(event: ProcedureDossierEvent, province: str) -> dict[str, Any]:
    """What the dossier table keeps per dossier code (JSON)."""
    return {"province": province, "status": event.status.value,
            "due_at": event.due_at.isoformat(), "at": event.occurred_at.isoformat()}  # fmt: skip


def overdue_by_province(states: list[dict[str, Any]], now: datetime) -> Counter[str]:
    """Dossiers not completed or returned whose due date has passed."""
    return Counter(
        s["province"]
        for s in states
        if s["status"] not in FINAL and datetime.fromisoformat(s["due_at"]) < now
    )
