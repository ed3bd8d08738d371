"""`hub quality`: the six data-quality dimensions for the whole hub, per source and province,
from the central store: every event stored (its quality issues) and every dead letter (usable on
no dimension), with "shared" judged from later facts — a registration's interconnection steps
done by their deadlines. Definitions: docs/INDICATORS.md ("Data quality")."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from hub.domain.indicators import Period
from hub.domain.quality import DIMENSIONS
from hub.domain.workflows import case_id_for
from hub.metrics import source_label
from hub.store.reports import as_moment
from hub.store.sql import Store

IDENTITY = ("subject_", "name_mismatch", "sex_mismatch", "dob_mismatch")


def dimensions_of(issues: list[str], shared: bool) -> dict[str, bool]:
    """A stored event's dimensions, read back from the issue codes the pipeline recorded."""
    mismatch = any(i.startswith(IDENTITY) and i != "subject_unknown" for i in issues)
    return {
        "correct": not any(i.startswith(IDENTITY) for i in issues),
        "sufficient": not any(i.startswith("missing_") for i in issues),
        "clean": "duplicate" not in issues and not mismatch,
        "alive": "stale" not in issues and "register_stale" not in issues,
        "unified": not any(i.startswith("unknown_icd10") for i in issues),
        "shared": shared,
    }


def cases_shared(store: Store, now: datetime) -> dict[str, bool]:
    """Per case id: every step done, each by its deadline (False while a step is still open
    past its deadline, or was rejected)."""
    ok: dict[str, bool] = {}
    for case_id, state, due, updated in store.query(
        "SELECT case_id, state, due_at, updated_at FROM case_steps"
    ):
        due_at = as_moment(due) if due is not None else None
        done_at = as_moment(updated) if updated is not None else None
        good = state == "DONE" and (due_at is None or done_at is None or done_at <= due_at)
        pending_in_time = state == "PENDING" and due_at is not None and now < due_at
        ok[str(case_id)] = ok.get(str(case_id), True) and (good or pending_in_time)
    return ok


def quality_report(store: Store, period: Period, now: datetime) -> dict[str, Any]:
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    shared_cases = cases_shared(store, now)
    ok: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    arrived: Counter[tuple[str, str]] = Counter()
    letters: Counter[tuple[str, str]] = Counter()
    reasons: Counter[str] = Counter()
    for event_id, topic, province, issues in store.query(
        "SELECT event_id, source_topic, province_code, quality_issues FROM events "
        "WHERE ingested_at >= ? AND ingested_at < ?", (start, end)):  # fmt: skip
        key = (source_label(str(topic)), str(province))
        arrived[key] += 1
        case = str(case_id_for(uuid.UUID(str(event_id))))
        dims = dimensions_of([i for i in str(issues).split(",") if i],
                             shared_cases.get(case, True))  # fmt: skip
        for dim, good in dims.items():
            ok[key][dim] += good
    for topic, province, reason in store.query(
        "SELECT source_topic, province_code, reason FROM dead_letters "
        "WHERE failed_at >= ? AND failed_at < ?", (start, end)):  # fmt: skip
        key = (source_label(str(topic)), str(province))
        arrived[key] += 1
        letters[key] += 1
        reasons[str(reason)] += 1
    groups = []
    for (source, province), n in sorted(arrived.items()):
        groups.append({
            "source": source, "province": province, "events": n,
            "dead_letters": letters[(source, province)],
            "dimensions": {d: ok[(source, province)][d] / n for d in DIMENSIONS},
        })  # fmt: skip
    total = sum(arrived.values())
    return {
        "period": period.label, "as_of": now.isoformat(), "events": total,
        "dead_letters_by_reason": dict(reasons.most_common()),
        "dimensions": {d: (sum(c[d] for c in ok.values()) / total if total else None)
                       for d in DIMENSIONS},
        "by_source_and_province": groups,
    }  # fmt: skip
