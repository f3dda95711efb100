"""Job.levels reads a job's links packed by chunks (models.jobs.levels.links_pipeline): a clean chunk is taken whole, a
chunk holding one odd value is read task by task. Both ways must read every task alike."""

from __future__ import annotations

from typing import Any

from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

from models.jobs.levels import JobLinks, unpack_links

ids = st.one_of(
    st.integers(1, 2**63 - 1).map(Int64),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=3),
)
statuses = st.one_of(st.none(), st.text(max_size=5), st.integers(), st.booleans())
links = st.one_of(
    st.lists(st.one_of(st.integers(-3, 50).map(Int64), st.integers(1, 50), st.booleans()), max_size=4),
    st.integers(),
    st.none(),
)
tasks = st.tuples(ids, statuses, links)


def chunk(rows: list[tuple[Any, Any, Any]]) -> dict[str, list[Any]]:
    return {"ids": [r[0] for r in rows], "statuses": [r[1] for r in rows], "nexts": [r[2] for r in rows]}


def as_lists(read: JobLinks) -> tuple[list[int], list[str | None], list[list[int]]]:
    return [int(i) for i in read.ids], read.statuses, [[int(i) for i in n] for n in read.nexts]


@given(st.lists(tasks, max_size=12))
def test_a_chunk_is_read_as_its_tasks_one_by_one(rows: list[tuple[Any, Any, Any]]) -> None:
    whole = unpack_links([chunk(rows)])
    one_by_one = unpack_links([chunk([row]) for row in rows])
    assert as_lists(whole) == as_lists(one_by_one)


def test_a_clean_chunk_is_taken_as_it_is() -> None:
    rows = [(Int64(1), "DONE", [Int64(2)]), (Int64(2), None, []), (3, "READY", [Int64(1), Int64(2)])]
    assert as_lists(unpack_links([chunk(rows)])) == ([1, 2, 3], ["DONE", None, "READY"], [[2], [], [1, 2]])


def test_odd_values_are_read_as_readers_see_them() -> None:
    rows = [(Int64(1), 7, [Int64(2), Int64(2)]), (-4, "DONE", []), (Int64(5), "READY", "not a list")]
    read = as_lists(unpack_links([chunk(rows)]))
    assert read[0] == [1, 5] and read[2] == [[2], []], read
