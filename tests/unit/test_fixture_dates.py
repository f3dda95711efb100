"""The data builders that take `now` (bench.data: the benchmark's data and the live view's test jobs) place every
date they write relative to it. The pages and summaries measure running tasks against the clock, so a date fixed
in a builder makes a test's outcome depend on the day it runs: a RUNNING bar pinned to a fixed start grows wider
every day until an assertion about the picture fails."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import bench.data

# Far from any day the suite runs on: a builder that ignores `now` is found whatever today is.
SOME_NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
# The widest window a builder may use: the timeline job starts a little over a day before now, to cross midnight.
WINDOW = timedelta(days=2)
ARGUMENTS: dict[str, Any] = {
    "first_id": 1,
    "task_id": 1,
    "count": 60,
    "levels": 3,
    "job": "j",
    "nexts": [2],
    "previous": [],
    "now": SOME_NOW,
}


def builders() -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, function in inspect.getmembers(bench.data, inspect.isfunction):
        parameters = inspect.signature(function).parameters
        if "now" in parameters and not inspect.iscoroutinefunction(function):
            yield name, function


def dates_in(value: Any) -> Iterator[datetime]:
    if isinstance(value, datetime):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from dates_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from dates_in(item)


def test_the_builders_are_found() -> None:
    assert {"task_doc", "staged_job", "timed_job"} <= {name for name, _ in builders()}


@pytest.mark.parametrize(("name", "builder"), list(builders()))
def test_every_date_a_builder_writes_is_within_two_days_before_now(name: str, builder: Callable[..., Any]) -> None:
    parameters = inspect.signature(builder).parameters
    built = builder(**{key: ARGUMENTS[key] for key in parameters if key in ARGUMENTS})
    dates = list(dates_in(built))
    assert dates, f"{name} wrote no date"
    outside = [date for date in dates if not SOME_NOW - WINDOW <= date <= SOME_NOW]
    assert not outside, f"{name} wrote dates not within {WINDOW} before now: {sorted(set(outside))[:3]}"
