"""Graph algorithms over tasks already in memory: no MongoDB here, so they are easy to test exhaustively."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime

from models.errors import GraphCycle
from models.stored_task import TaskDoc

__all__ = ["GraphCycle", "critical_path", "duration_ms", "find_cycle", "stage_depths", "topological_order"]


def duration_ms(task: TaskDoc, now: datetime) -> int:
    """finish - start; now - start while it runs; 0 without a start (or with a finish before its start)."""
    start, finish = task.get("start-time"), task.get("finish-time")
    if not isinstance(start, datetime):
        return 0
    end = finish if isinstance(finish, datetime) else now
    return max(0, int((end - start).total_seconds() * 1000))


def topological_order(successors: Mapping[int, Sequence[int]]) -> list[int]:
    """Every node, each after all of its predecessors (Kahn, lower ids first); GraphCycle if there is none."""
    incoming = dict.fromkeys(successors, 0)
    for targets in successors.values():
        for target in targets:
            incoming[target] += 1
    ready = deque(sorted(node for node, count in incoming.items() if count == 0))
    order: list[int] = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for target in sorted(successors[node]):
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    if len(order) < len(successors):
        left = {node for node, count in incoming.items() if count > 0}
        cycle = find_cycle(successors, left)
        raise GraphCycle(f"the links hold a cycle through task {cycle[0]} ({' -> '.join(map(str, cycle))})", cycle)
    return order


def find_cycle(successors: Mapping[int, Sequence[int]], among: set[int]) -> list[int]:
    """A cycle within `among`, a set of nodes each with a predecessor in it (what Kahn's algorithm leaves),
    from its lowest node: walking back along predecessors from there must repeat a node."""
    predecessors: dict[int, list[int]] = {node: [] for node in among}
    for node in among:
        for target in successors[node]:
            if target in among:
                predecessors[target].append(node)
    path: list[int] = []
    position: dict[int, int] = {}
    node = min(among)
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = min(predecessors[node])
    cycle = list(reversed(path[position[node] :]))
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    return [*cycle, cycle[0]]


def _better(length: int, node: int, best_length: int | None, best_node: int | None) -> bool:
    """Whether arriving from `node` (a chain of `length`) beats the best arrival so far."""
    if best_length is None or best_node is None:
        return True
    return length > best_length or (length == best_length and node < best_node)


def critical_path(tasks: Mapping[int, TaskDoc], now: datetime) -> list[int]:
    """The chain of linked tasks (from one with no previous task among `tasks` to one with no next among them)
    with the largest total duration; among equal chains, the one whose ids are lower, compared from its end
    backwards: each task's best predecessor is the lowest id among the equally good ones, and the last task
    is the lowest id among the equally good ends."""
    successors = {task_id: [i for i in doc.get("nexts") or () if i in tasks] for task_id, doc in tasks.items()}
    best: dict[int, int] = {}
    came_from: dict[int, int | None] = {}
    for node in topological_order(successors):
        best.setdefault(node, 0)
        came_from.setdefault(node, None)
        best[node] += duration_ms(tasks[node], now)
        for target in successors[node]:
            if _better(best[node], node, best.get(target), came_from.get(target)):
                best[target], came_from[target] = best[node], node
    if not best:
        return []
    ends = [node for node, targets in successors.items() if not targets]
    last = min(ends, key=lambda node: (-best[node], node))
    path = [last]
    while (previous := came_from[path[-1]]) is not None:
        path.append(previous)
    return list(reversed(path))


def stage_depths(ids: Sequence[int], successors: Sequence[Sequence[int]]) -> list[int]:
    """Each node's stage: 0 for a node with no predecessor, else one more than its deepest predecessor (the
    longest chain of links from a root), so a task comes after every task it waits for; GraphCycle if the links
    hold a cycle. Node k is `ids[k]`, its targets the positions `successors[k]`; the stages come by position.

    Kahn's algorithm over positions, in any order (the stages do not depend on it), without the sorting of
    `topological_order`: Job.levels runs this over 100,000-task jobs. A cycle is named by `topological_order`."""
    incoming = [0] * len(ids)
    for targets in successors:
        for target in targets:
            incoming[target] += 1
    depth = [0] * len(ids)
    ready = [node for node, count in enumerate(incoming) if count == 0]
    reached = 0
    while ready:
        node = ready.pop()
        reached += 1
        below = depth[node] + 1
        for target in successors[node]:
            if depth[target] < below:
                depth[target] = below
            incoming[target] -= 1
            if not incoming[target]:
                ready.append(target)
    if reached < len(ids):  # raises GraphCycle naming a cycle
        topological_order({ids[node]: [ids[target] for target in targets] for node, targets in enumerate(successors)})
    return depth
