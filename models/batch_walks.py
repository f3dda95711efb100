"""Walks from many tasks at once: what a list of tasks asks for when each of its tasks selects a walk
(`descendants`, `ancestors`, `blockedBy(transitive: true)` over a job's tasks).

All the walks go breadth-first in step, level by level, over the tasks the caller already holds (a request's
tasks: a whole job, say) and read the rest together: one query per level that reaches a task nobody read yet,
for every walk at once, rather than one aggregation per walk. Each walk's answer is the one models.walks gives
for it alone: nearest level first, by id within a level, the start excluded, safe on cycles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

from models.errors import TraversalTooLarge
from models.stored_task import TaskDoc
from models.walks import Direction, next_level, too_large

Fetch = Callable[[list[int]], Awaitable[dict[int, TaskDoc]]]
"""Reads the tasks that exist among some ids (one query), by id."""


@dataclass
class _Walk:
    """One walk in progress: the ids seen, the next level's ids, the tasks found so far."""

    seen: set[int]
    frontier: list[int]
    found: list[TaskDoc] = field(default_factory=list)
    depth: int = 0
    refused: bool = False


@dataclass(frozen=True)
class ManyWalks:
    """Each start's walk (or its refusal, TraversalTooLarge), in the order of the starts, and the tasks read from
    MongoDB to answer them (not among those the caller held)."""

    found: list[list[TaskDoc] | TraversalTooLarge]
    fetched: list[TaskDoc]


async def walk_many(
    starts: Sequence[TaskDoc],
    direction: Direction,
    max_depth: int | None,
    bound: int,
    known: Mapping[int, TaskDoc],
    fetch: Fetch,
) -> ManyWalks:
    """Every task reachable from each start over its `direction` links, up to `max_depth` levels (None: all);
    a start's walk past `bound` tasks is refused (TraversalTooLarge) without failing the others."""
    walks = [_Walk(seen := {start["_id"]}, next_level([start], direction, seen)) for start in starts]
    held: dict[int, TaskDoc | None] = dict(known)
    fetched: list[TaskDoc] = []
    active = [walk for walk in walks if _goes_on(walk, max_depth)]
    while active:
        missing = sorted({i for i in chain.from_iterable(walk.frontier for walk in active) if i not in held})
        if missing:
            found = await fetch(missing)
            fetched.extend(found.values())
            held.update({task_id: found.get(task_id) for task_id in missing})
        for walk in active:
            _step(walk, held, direction, bound)
        active = [walk for walk in active if _goes_on(walk, max_depth)]
    return ManyWalks([too_large(bound) if walk.refused else walk.found for walk in walks], fetched)


def _goes_on(walk: _Walk, max_depth: int | None) -> bool:
    return bool(walk.frontier) and not walk.refused and (max_depth is None or walk.depth < max_depth)


def _step(walk: _Walk, held: Mapping[int, TaskDoc | None], direction: Direction, bound: int) -> None:
    """One level of one walk: its frontier's tasks that exist, by id; the next frontier from them."""
    level = [doc for doc in (held.get(i) for i in sorted(walk.frontier)) if doc is not None]
    walk.found.extend(level)
    walk.depth += 1
    if len(walk.found) > bound:
        walk.refused, walk.found, walk.frontier = True, [], []
        return
    walk.frontier = next_level(level, direction, walk.seen)
