"""Following links: a task's direct neighbours, and every task reachable from one over its links."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any, Literal

from pymongo.errors import OperationFailure

from models.errors import TaskNotFound, TraversalTooLarge
from models.filters import task_filter
from models.storage import Storage
from models.stored_task import TaskDoc, readable_task, readable_tasks

log = logging.getLogger(__name__)

Direction = Literal["nexts", "previous"]
"""Which links to follow: "nexts" leads downstream, "previous" upstream (the stored arrays' names)."""
_GRAPH_LOOKUP_OUT_OF_MEMORY = 40099  # $graphLookup holds more than its limit (100 MB) of documents
_WALK_DEPTH = "_walk_depth"  # set by $graphLookup on each task it found, removed before the tasks leave


def next_level(docs: Iterable[TaskDoc], direction: Direction, seen: set[int]) -> list[int]:
    """One breadth-first level: the ids the tasks' `direction` links lead to that are not seen yet, in order,
    once each; marks them seen."""
    fresh = [i for i in dict.fromkeys(i for doc in docs for i in doc.get(direction) or ()) if i not in seen]
    seen.update(fresh)
    return fresh


def too_large(bound: int) -> TraversalTooLarge:
    """The refusal of a walk that reaches more than `bound` tasks."""
    return TraversalTooLarge(f"traversal bound exceeded: more than {bound} tasks (TRACKING_GRAPHQL_MAX_TRAVERSAL)")


class Walks:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def linked(
        self, task_id: int, direction: Direction, statuses: Collection[str] | None, task_type: str | None
    ) -> list[TaskDoc]:
        """The tasks the task's `direction` links lead to, by ascending id, filtered (models.filters);
        TaskNotFound when the task does not exist."""
        doc = await self._storage.tasks.find_one(self._storage.within({"_id": task_id}), {direction: 1})
        readable = readable_task(doc) if doc is not None else None
        if readable is None:
            raise TaskNotFound([task_id])
        linked = readable.get(direction) or []
        if not linked:
            return []
        return await self._storage.find_sorted({"_id": {"$in": linked}, **task_filter(statuses, task_type)})

    async def walk(self, task: TaskDoc, direction: Direction, max_depth: int | None, bound: int) -> list[TaskDoc]:
        """Every task reachable from `task` over its `direction` links, nearest level first and by id within a
        level, up to `max_depth` levels (None: all); TraversalTooLarge past `bound` tasks. Safe on cycles other
        tools wrote.

        One `$graphLookup` aggregation; when the tasks it finds outgrow the memory MongoDB gives it (100 MB by
        default), one query per level instead."""
        if max_depth == 0 or not task.get(direction):
            return []
        try:
            found = await self._in_one_aggregation(task["_id"], direction, max_depth, bound)
        except OperationFailure as error:
            if error.code != _GRAPH_LOOKUP_OUT_OF_MEMORY:
                raise
            log.info("walk from task %s is too large for $graphLookup; walking level by level", task["_id"])
            found = await self._by_levels(task, direction, max_depth, bound)
        if len(found) > bound:
            raise too_large(bound)
        return found

    async def _in_one_aggregation(
        self, task_id: int, direction: Direction, max_depth: int | None, bound: int
    ) -> list[TaskDoc]:
        depth_limit: dict[str, Any] = {"maxDepth": max_depth - 1} if max_depth is not None else {}
        if self._storage.scope_clause is not None:  # a scoped walk goes through the tasks of its scope only
            depth_limit["restrictSearchWithMatch"] = self._storage.scope_clause
        pipeline: list[dict[str, Any]] = [
            {"$match": {"_id": task_id}},
            {
                "$graphLookup": {
                    "from": self._storage.tasks.name,
                    "startWith": f"${direction}",
                    "connectFromField": direction,
                    "connectToField": "_id",
                    "as": "reached",
                    "depthField": _WALK_DEPTH,
                    **depth_limit,
                }
            },
            # Right after $graphLookup, MongoDB folds the $unwind into it: no single 16 MB document of results.
            {"$unwind": "$reached"},
            {"$replaceRoot": {"newRoot": "$reached"}},
            {"$match": {"_id": {"$ne": task_id}}},  # on a cycle, the walk comes back to where it started
            {"$sort": {_WALK_DEPTH: 1, "_id": 1}},
            {"$limit": bound + 1},
        ]
        docs = await (await self._storage.tasks.aggregate(pipeline, batchSize=bound + 1)).to_list(None)
        for doc in docs:
            del doc[_WALK_DEPTH]
        return readable_tasks(docs)

    async def _by_levels(self, task: TaskDoc, direction: Direction, max_depth: int | None, bound: int) -> list[TaskDoc]:
        seen = {task["_id"]}
        frontier = next_level([task], direction, seen)
        found: list[TaskDoc] = []
        depth = 0
        while frontier and (max_depth is None or depth < max_depth) and len(found) <= bound:
            depth += 1
            level = await self._storage.find_sorted({"_id": {"$in": frontier}})
            found.extend(level)
            frontier = next_level(level, direction, seen)
        return found
