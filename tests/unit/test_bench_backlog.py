"""`python -m hub.bench.backlog`'s table: one row per fetch size, each run's figures in it,
the open cases read from the workers as they stopped included (what explains a peak)."""

from __future__ import annotations

from hub.bench.backlog import OPEN_CASES, table
from hub.bench.runner import Figures


def test_each_run_of_each_size_is_in_its_row() -> None:
    results = {
        1024**2: [Figures(5679.4, 0.19, 299.2, extra={OPEN_CASES: [1200.0]}),
                  Figures(5630.0, 0.21, 306.0, extra={OPEN_CASES: [1310.0]})],
        65536: [Figures(3855.0, 0.29, 232.0, extra={OPEN_CASES: [25000.0]})],
    }  # fmt: skip
    rows = table(results, 40).splitlines()
    assert "40 s" in rows[0]
    assert rows[3] == "| 1,048,576 | 5,679, 5,630 | 299, 306 | 1,200, 1,310 | 0.20 |"
    assert rows[4] == "| 65,536 | 3,855 | 232 | 25,000 | 0.29 |"
    assert "open cases" in rows[1]
