"""The working-day calendar is read when the pipeline is made, not in the first batch."""

from __future__ import annotations

from datetime import datetime

from hub.domain import calendar
from hub.stream.pipeline import Pipeline, PipelineConfig
from hub.wire.codec import Codec


def test_a_pipeline_reads_this_and_next_years_calendars_when_it_is_made() -> None:
    """A worker's first batch with a deadline must not pay for the holidays package's import
    of its country modules (a stall of ~0.1 s, more beside a busy broker)."""
    calendar._public_holidays.cache_clear()
    Pipeline(Codec(), PipelineConfig())
    year = datetime.now(calendar.VIETNAM).year
    made = calendar._public_holidays.cache_info()
    assert made.currsize == 2
    calendar._public_holidays(year)
    calendar._public_holidays(year + 1)
    assert calendar._public_holidays.cache_info().hits == made.hits + 2, "both were read"
