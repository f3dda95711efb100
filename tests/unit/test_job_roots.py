"""Job.roots as a scoped caller sees it (models.jobs.roots), on random acyclic jobs with random tasks hidden: every
task the caller sees descends, over links it sees, from a root it sees; the stored roots stay roots; and what
else is a root is exactly the tasks with no previous task it sees."""

from __future__ import annotations

from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from models.jobs.roots import previous_elsewhere, roots_seen
from models.stored_task import TaskDoc

SIZE = 12


@st.composite
def jobs(draw: st.DrawFn) -> tuple[list[TaskDoc], set[int], set[int]]:
    """An acyclic job (links from lower to higher ids), the tasks hidden from the caller, and those it sees in
    other jobs; the caller is given the job's other tasks."""
    size = draw(st.integers(1, SIZE))
    edges = draw(st.sets(st.tuples(st.integers(1, size), st.integers(1, size)).filter(lambda e: e[0] < e[1])))
    roots = draw(st.sets(st.integers(1, size)))
    hidden = draw(st.sets(st.integers(1, size)))
    elsewhere = draw(st.sets(st.integers(1, size))) - hidden
    shown = [
        cast(TaskDoc, {"_id": i, "root": i in roots, "previous": sorted(a for a, b in edges if b == i)})
        for i in range(1, size + 1)
        if i not in hidden and i not in elsewhere
    ]
    return shown, hidden, elsewhere


def descends(task_id: int, by_id: dict[int, TaskDoc], starts: set[int], elsewhere: set[int]) -> bool:
    """Whether going back over previous links the caller sees from `task_id` reaches a start or another job."""
    frontier, visited = [task_id], set()
    while frontier:
        current = frontier.pop()
        if current in starts or current in elsewhere:
            return True
        if current not in visited:
            visited.add(current)
            frontier.extend(p for p in by_id[current]["previous"] if p in by_id or p in elsewhere)
    return False


@given(jobs())
def test_every_task_seen_descends_from_a_root_seen_or_from_a_task_of_another_job(job):
    tasks, _, elsewhere = job
    found = {task["_id"] for task in roots_seen(tasks, elsewhere)}
    by_id = {task["_id"]: task for task in tasks}
    for task in tasks:
        assert descends(task["_id"], by_id, found, elsewhere), task


@given(jobs())
def test_the_roots_are_the_stored_ones_and_those_with_no_previous_task_seen(job):
    tasks, _, elsewhere = job
    found = roots_seen(tasks, elsewhere)
    ids = {task["_id"] for task in tasks}
    for task in tasks:
        seen_before = [p for p in task["previous"] if p in ids or p in elsewhere]
        assert (task in found) == (task["root"] is True or not seen_before), task
    assert previous_elsewhere(tasks) <= {p for task in tasks for p in task["previous"]} - ids
