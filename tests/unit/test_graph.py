"""models/graph.py, in memory: the order, cycles, stages and critical path every job read relies on, checked
against brute force over random graphs (hypothesis) rather than through HTTP and MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.errors import GraphCycle
from models.graph import critical_path, duration_ms, find_cycle, stage_depths, topological_order
from models.stored_task import TaskDoc

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 9) -> dict[int, list[int]]:
    """Nodes 1..n, each linking only to higher ones: acyclic by construction."""
    count = draw(st.integers(min_value=0, max_value=max_nodes))
    nodes = list(range(1, count + 1))
    return {node: sorted(draw(st.sets(st.sampled_from(nodes[index + 1 :]))) if index + 1 < count else [])
            for index, node in enumerate(nodes)}  # fmt: skip


@st.composite
def graphs(draw: st.DrawFn) -> dict[int, list[int]]:
    """Any links among nodes 1..n, cycles and self-links included."""
    count = draw(st.integers(min_value=1, max_value=7))
    nodes = list(range(1, count + 1))
    return {node: sorted(draw(st.sets(st.sampled_from(nodes)))) for node in nodes}


def _reachable(successors: dict[int, list[int]], start: int) -> set[int]:
    seen: set[int] = set()
    frontier = list(successors[start])
    while frontier:
        node = frontier.pop()
        if node not in seen:
            seen.add(node)
            frontier.extend(successors[node])
    return seen


@given(dags())
def test_the_order_puts_every_task_after_all_it_waits_for(successors: dict[int, list[int]]) -> None:
    order = topological_order(successors)
    assert sorted(order) == sorted(successors)
    position = {node: index for index, node in enumerate(order)}
    assert all(position[node] < position[target] for node, targets in successors.items() for target in targets)


@given(graphs())
def test_a_cycle_is_refused_naming_one_that_is_there(successors: dict[int, list[int]]) -> None:
    cyclic = any(node in _reachable(successors, node) for node in successors)
    if not cyclic:
        assert len(topological_order(successors)) == len(successors)
        return
    with pytest.raises(GraphCycle) as refused:
        topological_order(successors)
    cycle = refused.value.cycle
    assert cycle[0] == cycle[-1] == min(cycle)  # from its lowest node, back to it
    assert all(target in successors[node] for node, target in pairwise(cycle))


def test_find_cycle_walks_back_from_the_lowest_node_left() -> None:
    assert find_cycle({1: [2], 2: [3], 3: [2]}, {2, 3}) == [2, 3, 2]


@given(dags())
def test_a_stage_is_one_more_than_the_deepest_task_waited_for(successors: dict[int, list[int]]) -> None:
    ids = list(successors)
    position = {node: index for index, node in enumerate(ids)}
    depths = stage_depths(ids, [[position[target] for target in successors[node]] for node in ids])
    by_node = dict(zip(ids, depths, strict=True))
    for node in ids:
        waited_for = [other for other in ids if node in successors[other]]
        assert by_node[node] == (1 + max(by_node[other] for other in waited_for) if waited_for else 0)


def test_stages_refuse_a_cycle_naming_it() -> None:
    with pytest.raises(GraphCycle) as refused:
        stage_depths([10, 20, 30], [[1], [2], [1]])
    assert refused.value.cycle == [20, 30, 20]


def _task(task_id: int, nexts: list[int], minutes: int | None) -> TaskDoc:
    task: TaskDoc = {"_id": task_id, "nexts": nexts}
    if minutes is not None:
        task["start-time"] = NOW - timedelta(hours=1)
        task["finish-time"] = NOW - timedelta(hours=1) + timedelta(minutes=minutes)
    return task


def _chains(successors: dict[int, list[int]]) -> list[list[int]]:
    """Every chain from a node nothing links to, to a node linking to nothing."""
    targets = {target for links in successors.values() for target in links}

    def from_(node: int) -> list[list[int]]:
        return [[node]] if not successors[node] else [[node, *rest] for t in successors[node] for rest in from_(t)]

    return [chain for node in successors if node not in targets for chain in from_(node)]


@given(dags(max_nodes=7), st.data())
def test_the_critical_path_is_a_longest_chain_by_duration(
    successors: dict[int, list[int]], data: st.DataObject
) -> None:
    minutes = {node: data.draw(st.one_of(st.none(), st.integers(0, 30))) for node in successors}
    tasks = {node: _task(node, links, minutes[node]) for node, links in successors.items()}
    path = critical_path(tasks, NOW)
    if not successors:
        assert path == []
        return
    length = {tuple(chain): sum(duration_ms(tasks[n], NOW) for n in chain) for chain in _chains(successors)}
    assert tuple(path) in length
    assert length[tuple(path)] == max(length.values())


def test_a_running_task_counts_until_now_and_one_without_a_start_counts_nothing() -> None:
    running: TaskDoc = {"_id": 1, "start-time": NOW - timedelta(seconds=3)}
    assert duration_ms(running, NOW) == 3000
    assert duration_ms({"_id": 2, "finish-time": NOW}, NOW) == 0
    backwards: TaskDoc = {"_id": 3, "start-time": NOW, "finish-time": NOW - timedelta(seconds=1)}
    assert duration_ms(backwards, NOW) == 0
