"""`python -m hub.bench.case_start`: the three changelogs it starts a worker over hold what
their names say, written as faust's case table writes them (a figure over a wrong layout would
mean nothing)."""

from __future__ import annotations

import json

from hub.bench.case_start import changelog
from hub.domain import cases as case_logic


def test_the_three_layouts_of_the_case_changelog() -> None:
    kept = list(changelog(100, 0.1, "kept"))
    tombstoned = list(changelog(100, 0.1, "tombstoned"))
    cleaned = list(changelog(100, 0.1, "cleaned"))

    states = {key: json.loads(value) for key, value in kept if value is not None}
    assert len(kept) == len(states) == 100, "every case, once"
    open_keys = {k for k, s in states.items() if s["status"] == case_logic.OPEN}
    assert len(open_keys) == 10
    assert all(s["case_id"].encode() == k for k, s in states.items()), "keyed by case id"

    # Eviction: a closed case is written, then removed (a tombstone after it).
    assert [k for k, v in tombstoned if v is None] == [k for k in states if k not in open_keys]
    written = {k: json.loads(v)["status"] for k, v in tombstoned if v is not None}
    assert written == {k: s["status"] for k, s in states.items()}, "each written before it goes"
    assert len(tombstoned) == 190
    # After the log cleaner: the open cases alone.
    assert {k for k, _ in cleaned} == open_keys and all(v is not None for _, v in cleaned)
