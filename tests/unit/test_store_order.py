"""The order in which the store writes rows another worker may write too (hub/store/sql.py
``in_key_order``): one ascending order of the key across statements, so two transactions never
lock the same rows in different orders (tests/integration/test_store_contract.py shows the
deadlock it prevents on a real PostgreSQL)."""

from __future__ import annotations

import random

from hub.store.sql import in_key_order


def test_rows_of_two_statements_come_in_one_key_order_as_runs() -> None:
    births = [("P3", "b"), ("P1", "b"), ("P6", "b")]
    deaths = [("d", "t", "P2"), ("d", "t", "P5"), ("d", "t", "P4")]  # key in the third column
    runs = in_key_order(("BIRTH", births, 0), ("DEATH", deaths, 2))
    assert runs == [
        ("BIRTH", [("P1", "b")]),
        ("DEATH", [("d", "t", "P2")]),
        ("BIRTH", [("P3", "b")]),
        ("DEATH", [("d", "t", "P4"), ("d", "t", "P5")]),
        ("BIRTH", [("P6", "b")]),
    ]


def test_any_input_order_gives_the_same_runs_and_a_key_keeps_its_statement_order() -> None:
    rng = random.Random(5)
    upserts = [(f"{n:04d}", "u") for n in range(0, 60, 3)]
    deletes = [(f"{n:04d}", "x") for n in range(0, 60, 4)]  # some keys in both: upsert first
    expected = in_key_order(("UP", upserts, 0), ("DEL", deletes, 0))
    keys = [row[0] for _, rows in expected for row in rows]
    assert keys == sorted(keys), "one ascending order across both statements"
    assert ("UP", [("0000", "u")]) == expected[0] and expected[1][0] == "DEL"
    for _ in range(20):
        rng.shuffle(upserts)
        rng.shuffle(deletes)
        assert in_key_order(("UP", upserts, 0), ("DEL", deletes, 0)) == expected
    assert in_key_order(("UP", [], 0)) == []
