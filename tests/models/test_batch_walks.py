"""Walks from many tasks at once (models.batch_walks, GraphStore.walk_many) give each start exactly the walk it
gets alone (GraphStore.walk: one $graphLookup): same tasks, same order, same refusals, on generated graphs with
cycles and dangling links, whatever part of the graph the caller already holds."""

from __future__ import annotations

from typing import Any

from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import TraversalTooLarge

SIZE = 12


@st.composite
def graphs(draw: st.DrawFn) -> dict[int, list[int]]:
    """Task id -> its next ids: any links, cycles and links to missing tasks (id SIZE + 1) included."""
    return {
        task_id: draw(st.lists(st.integers(1, SIZE + 1), max_size=3, unique=True)) for task_id in range(1, SIZE + 1)
    }


def _docs(nexts: dict[int, list[int]]) -> list[dict[str, Any]]:
    previous: dict[int, list[int]] = {task_id: [] for task_id in nexts}
    for task_id, targets in nexts.items():
        for target in targets:
            previous.setdefault(target, []).append(task_id)
    return [
        {
            "_id": Int64(task_id),
            "job-id": "walks",
            "nexts": [Int64(n) for n in nexts[task_id]],
            "previous": [Int64(p) for p in sorted(previous[task_id])],
        }
        for task_id in nexts
    ]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    nexts=graphs(),
    starts=st.lists(st.integers(1, SIZE), min_size=1, max_size=SIZE),
    held=st.sets(st.integers(1, SIZE)),
    direction=st.sampled_from(["nexts", "previous"]),
    max_depth=st.none() | st.integers(0, 4),
    bound=st.integers(1, SIZE),
)
async def test_walks_from_many_tasks_are_each_walk_alone(
    store, raw_db, nexts, starts, held, direction, max_depth, bound
) -> None:
    await raw_db.tasks.delete_many({})
    await raw_db.tasks.insert_many(_docs(nexts))
    stored = await store.get_tasks(list(range(1, SIZE + 1)))
    known = {task_id: stored[task_id] for task_id in held | set(starts)}
    together = await store.walk_many([stored[i] for i in starts], direction, max_depth, bound, known)
    for start, found in zip(starts, together.found, strict=True):
        try:
            alone = [doc["_id"] for doc in await store.walk(stored[start], direction, max_depth, bound)]
        except TraversalTooLarge:
            assert isinstance(found, TraversalTooLarge), (start, found)
            continue
        assert not isinstance(found, TraversalTooLarge), (start, found)
        assert [doc["_id"] for doc in found] == alone, start
    assert {doc["_id"] for doc in together.fetched}.isdisjoint(held | set(starts)) or len(starts) == 1
