"""One case report of the worker (every ``HUB_REPORT_INTERVAL_S``) over a large case table:
reading the whole table, as before, against reading the open cases the tracker keeps.

Run: ``python -m hub.bench.cases [--cases N] [--open-share F] [--waiting N]``. The table is
faust's memory store as the worker has it, each value serialized (:func:`hub.domain.cases.dump`)
— here every case ever opened, as before the sixth round's eviction — so reading it all back
decodes each one. Both ways then do the same work (hub/stream/cases.py ``CaseTracker.changed``
and ``report_cases`` over case summaries) and must give the same gauges; the figures are
milliseconds of the event loop per report.

``--memory N`` also measures the memory the tracker holds for N open cases (tracemalloc; the
cases of births and deaths of the simulator's traffic, each with the tasks its interconnection
opened): the table's values and the reports' summaries as the worker holds them, against the
cases as dicts (the table's values before the fourteenth round, which the reports read too).

``--json N`` also times writing and reading one case N times: the tracker's
:func:`~hub.domain.cases.dump` and :func:`~hub.domain.cases.load` (orjson) against the json module
they replaced in the sixteenth round (the same bytes), each once per case change.

``--waiting N`` also times the report's check for waiting cases to give up on
(``CaseTracker.expire_waiting``) with N of them waiting (answers, no task; none due): its cost
under a flood of answers to made-up case ids, at most ``HUB_CASES_WAITING_MAX`` of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import timeit
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from hub.domain import cases as case_logic
from hub.domain.cases import CaseState
from hub.domain.topics import SourceTopic
from hub.domain.workflows import expand
from hub.metrics import HubMetrics
from hub.sim.traffic import Traffic
from hub.stream.cases import CaseTracker, report_cases
from hub.wire.codec import Codec


def case(i: int, closed: bool, now: datetime) -> CaseState:
    """A birth's case with its police and social-insurance steps, done or waiting."""
    due = (now + timedelta(days=3 if i % 7 else -1)).isoformat()  # a seventh are overdue
    state = "DONE" if closed else case_logic.PENDING
    return {
        "case_id": f"case-{i}", "workflow": "birth", "province": "01",
        "status": case_logic.COMPLETED if closed else case_logic.OPEN,
        "opened_at": now.isoformat(),
        "steps": {f"{i}-police": {"state": state, "agency": "POLICE", "due_at": due},
                  f"{i}-insurance": {"state": state, "agency": "SOCIAL_INSURANCE", "due_at": due}},
    }  # fmt: skip


def _tracker(table: dict[bytes, Any], metrics: HubMetrics) -> CaseTracker:
    """A case tracker for the report's code only (no chunk is run, nothing stored: no codec, no
    outbox, no store)."""
    nothing: Any = None
    return CaseTracker(codec=nothing, metrics=metrics, out=nothing, table=table, store=nothing,
                       retry=nothing, worker_name="bench")  # fmt: skip


def one_report(table: dict[bytes, bytes], held: dict[bytes, case_logic.Summary],
               now: datetime) -> tuple[float, HubMetrics]:  # fmt: skip
    """Seconds of what the worker's report timer does with the cases ``held`` (of ``table``);
    the gauges it set."""
    metrics = HubMetrics.create(CollectorRegistry())
    tracker = _tracker(table, metrics)
    tracker.open = held
    began = time.perf_counter()
    tracker.changed(now)
    report_cases(metrics, list(held.values()), now)
    return time.perf_counter() - began, metrics


def open_every(cases: int, open_share: float) -> int:
    """Case ``i`` of ``cases`` is open when ``i % open_every(…) == 0``: ``open_share`` of them."""
    return max(1, round(1 / open_share)) if open_share > 0 else cases + 1


def run(cases: int, open_share: float) -> dict[str, float]:
    now = datetime.now(UTC)
    every = open_every(cases, open_share)
    table = {f"case-{i}".encode(): case_logic.dump(case(i, i % every != 0, now))
             for i in range(cases)}  # fmt: skip
    began = time.perf_counter()
    every_case = {key: case_logic.summary(case_logic.load(raw)) for key, raw in table.items()}
    read_all = time.perf_counter() - began
    whole_s, whole = one_report(table, every_case, now)
    tracker = _tracker(table, HubMetrics.create(CollectorRegistry()))
    tracker.reload()  # the open cases, chosen by the worker's own code
    kept = tracker.open
    kept_s, tracked = one_report(table, kept, now)
    same = [m.samples for m in whole.cases_open.collect()] == [
        m.samples for m in tracked.cases_open.collect()]  # fmt: skip
    return {"cases": cases, "open": len(kept), "read_whole_table_ms": read_all * 1000,
            "report_whole_table_ms": (read_all + whole_s) * 1000,
            "report_open_cases_ms": kept_s * 1000, "same_gauges": float(same)}  # fmt: skip


def waiting_check_ms(waiting: int, repeats: int = 3) -> float:
    """Milliseconds (best of ``repeats``) of the report's check over ``waiting`` waiting cases
    of which none is due (nothing given up on: no outbox, no store)."""
    now = datetime.now(UTC)
    tracker = _tracker({}, HubMetrics.create(CollectorRegistry()))
    for i in range(waiting):
        stray: CaseState = {
            "case_id": f"stray-{i}", "status": case_logic.OPEN, "answers": [],
            "steps": {f"{i}-police": {"state": "DONE", "agency": "POLICE"}},
            "waiting_since": (now - timedelta(milliseconds=i)).isoformat(),
        }  # fmt: skip
        tracker.table[f"stray-{i}".encode()] = case_logic.dump(stray)
        tracker.open[f"stray-{i}".encode()] = case_logic.summary(stray)
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        given_up = asyncio.run(tracker.expire_waiting(now, timedelta(days=1), waiting, tracker.out))
        timings.append(time.perf_counter() - began)
        assert given_up == 0
    return min(timings) * 1000


def open_cases(count: int) -> list[CaseState]:
    """``count`` open cases as the worker's tracker builds them from the tasks of the simulator's
    births and deaths (each with the steps its interconnection chose)."""
    traffic = Traffic(Codec(), seed=5, provinces=3, population=2_000)
    now = datetime.now(UTC)
    states: list[CaseState] = []
    while len(states) < count:
        event = traffic.event(SourceTopic.BIRTH if len(states) % 3 else SourceTopic.DEATH)
        tasks, _ = expand(event, event.province_code, event.commune_code, now)
        state: CaseState | None = None
        for _, task in tasks:
            state, _ = case_logic.on_task(state, task)
        if state is not None:
            states.append(state)
    return states


def memory_per_case(count: int) -> dict[str, float]:
    """Bytes a case of what the tracker holds (table values, reports' view), both ways; the
    keys, shared by both, are not counted."""
    raws = {s["case_id"].encode(): case_logic.dump(s) for s in open_cases(count)}
    tracemalloc.start()
    try:
        table = {key: case_logic.load(raw) for key, raw in raws.items()}
        held = dict(table)  # the reports' view: the same dicts
        as_dicts = tracemalloc.get_traced_memory()[0]
        del table, held
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        tracker = _tracker({k: bytes(memoryview(raw)) for k, raw in raws.items()},
                           HubMetrics.create(CollectorRegistry()))  # fmt: skip
        tracker.reload()
        compact = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(tracker.open) == count
    return {"dicts": as_dicts / count, "compact": compact / count,
            "json_bytes": sum(map(len, raws.values())) / count}  # fmt: skip


def json_us(n: int) -> dict[str, float]:
    """µs to write and to read one case (a birth's, two steps) ``n`` times each way: the
    tracker's orjson against the json module with the options it used (the same bytes)."""
    state = case(1, False, datetime.now(UTC))
    raw = case_logic.dump(state)

    def json_dumps() -> bytes:
        return json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode()

    if raw != json_dumps():
        raise RuntimeError("dump() no longer writes what the json module wrote")
    ways: dict[str, Callable[[], object]] = {
        "json dumps": json_dumps,
        "dump (orjson)": lambda: case_logic.dump(state),
        "json loads": lambda: json.loads(raw),
        "load (orjson)": lambda: case_logic.load(raw),
    }
    return {way: min(timeit.repeat(call, number=n, repeat=5)) * 1e6 / n
            for way, call in ways.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--cases", type=int, action="append",
        help="cases in the table (repeat; default 100,000 and 1,000,000)",
    )  # fmt: skip
    parser.add_argument("--open-share", type=float, default=0.05,
                        help="share of them still open (default 0.05)")  # fmt: skip
    parser.add_argument("--memory", type=int, default=0,
                        help="also measure the memory held for this many open cases")  # fmt: skip
    parser.add_argument("--json", type=int, default=0,
                        help="also time writing and reading one case this many times")  # fmt: skip
    parser.add_argument("--waiting", type=int, default=0,
                        help="also time the check for waiting cases to give up on, with this "
                             "many waiting")  # fmt: skip
    args = parser.parse_args()
    print("| cases in the table | open | whole table: ms a report (of it decoding) | "
          "open cases: ms a report | same gauges |")  # fmt: skip
    print("|---:|---:|---:|---:|---|")
    for n in args.cases or [100_000, 1_000_000]:
        r = run(n, args.open_share)
        print(f"| {n:,} | {r['open']:,.0f} | {r['report_whole_table_ms']:,.0f} "
              f"({r['read_whole_table_ms']:,.0f}) | {r['report_open_cases_ms']:,.1f} | "
              f"{'yes' if r['same_gauges'] else 'NO'} |")  # fmt: skip
    if args.memory:
        m = memory_per_case(args.memory)
        print(f"\nmemory held for {args.memory:,} open cases, bytes a case: as dicts (before) "
              f"{m['dicts']:,.0f}; serialised with a summary (now) {m['compact']:,.0f} "
              f"(of it the JSON {m['json_bytes']:,.0f})")  # fmt: skip
    if args.json:
        figures = json_us(args.json)
        print(f"\none case ({len(case_logic.dump(case(1, False, datetime.now(UTC))))} bytes of "
              "JSON), µs (best of 5): " + ", ".join(f"{way} {us:.2f}" for way, us in
                                                   figures.items()))  # fmt: skip
    if args.waiting:
        print(f"\nwaiting cases to give up on, checked over {args.waiting:,} waiting (none due): "
              f"{waiting_check_ms(args.waiting):,.0f} ms a report")  # fmt: skip


if __name__ == "__main__":
    main()
