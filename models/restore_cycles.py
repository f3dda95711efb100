"""Restore refuses links that would close a cycle: among the archive's own tasks, or through the stored tasks
it links to (models.lifecycle.restoring restores; models.archive_rules checked the archive's ids and links first).

A cycle through restored tasks runs from restored task to restored task, each step either a link between two
of them or a path through stored tasks only (leaving the archive by a link a -> x to a stored x, coming back by
a stored task y that the archive names in a task's `previous`, or whose own `nexts` already names a restored
id). So the stored tasks downstream of every such x are read (inside the restore's transaction), each exit
followed through them in memory to the restored tasks it leads back to, and models.graph's topological order
runs over the restored tasks with both kinds of steps: a cycle it finds is named with the stored tasks on it.
A cycle among stored tasks only was there before and is `check`'s to report, not the restore's to refuse.

The jobs of every task read are returned: the restore bumps their link lock documents, as a link addition
does for the tasks its search read (models.locks), so that a concurrent addition or restore that would close
a cycle together with this one conflicts with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from pymongo.asynchronous.client_session import AsyncClientSession

from models.errors import GraphCycle, InvalidOperation
from models.graph import topological_order
from models.stored_task import Collection, TaskDoc, readable_tasks
from models.walks import next_level

Path = list[int]


async def refuse_cycles(
    tasks: Collection, restored: list[TaskDoc], present: set[int], source: str, session: AsyncClientSession
) -> set[str | None]:
    """InvalidOperation naming a cycle the restored links would close; else the jobs of the stored tasks
    read. `restored`: the documents to insert (ids and links checked); `present`: the stored tasks they link
    to."""
    ids = {doc["_id"] for doc in restored}
    successors: dict[int, list[int]] = {doc["_id"]: [i for i in doc["nexts"] if i in ids] for doc in restored}
    exits = {doc["_id"]: [i for i in doc["nexts"] if i in present] for doc in restored}
    entries: dict[int, list[int]] = {}
    for doc in restored:
        for other in doc["previous"]:
            if other in present:
                entries.setdefault(other, []).append(doc["_id"])
    stored, jobs = await _downstream(tasks, {x for targets in exits.values() for x in targets}, ids, session)
    for stored_id, targets in stored.items():  # a stored link to a restored id (a tool left it) leads back too
        entries.setdefault(stored_id, []).extend(i for i in targets if i in ids)
    paths: dict[tuple[int, int], Path] = {}
    for task_id, targets in exits.items():
        for back_to, path in _ways_back(targets, stored, entries).items():
            if back_to not in successors[task_id]:  # a direct link names the same step more simply
                successors[task_id].append(back_to)
                paths[(task_id, back_to)] = path
    try:
        topological_order(successors)
    except GraphCycle as cycle:
        shown = " -> ".join(map(str, _expanded(cycle.cycle, paths)))
        raise InvalidOperation(f"{source}: restoring would close a cycle: {shown}; nothing was restored") from None
    return jobs


async def _downstream(
    tasks: Collection, starts: set[int], restored: set[int], session: AsyncClientSession
) -> tuple[dict[int, list[int]], set[str | None]]:
    """Every stored task downstream of `starts` (itself included) with its `nexts`, read a level at a time,
    and the jobs of those tasks. Restored ids are not read (none is stored)."""
    stored: dict[int, list[int]] = {}
    jobs: set[str | None] = set()
    seen = starts | restored
    frontier = list(starts)
    while frontier:
        cursor = tasks.find({"_id": {"$in": frontier}}, {"nexts": 1, "job-id": 1}, session=session)
        docs = readable_tasks(await cursor.to_list(None))
        for doc in docs:
            stored[doc["_id"]] = doc["nexts"]
            job = doc.get("job-id")
            jobs.add(job if isinstance(job, str) else None)
        frontier = next_level(docs, "nexts", seen)
    return stored, jobs


def _ways_back(starts: Iterable[int], stored: dict[int, list[int]], entries: dict[int, list[int]]) -> dict[int, Path]:
    """The restored tasks reachable from the stored tasks `starts` through stored tasks only, each with the
    stored tasks on one way there (breadth first: a shortest one)."""
    parent: dict[int, int | None] = dict.fromkeys(starts)
    frontier = list(parent)
    reached: dict[int, Path] = {}
    while frontier:
        following: list[int] = []
        for node in frontier:
            for restored in entries.get(node, ()):
                reached.setdefault(restored, _path_to(node, parent))
            for other in stored.get(node, ()):
                if other in stored and other not in parent:
                    parent[other] = node
                    following.append(other)
        frontier = following
    return reached


def _path_to(node: int, parent: dict[int, int | None]) -> Path:
    path = [node]
    while (previous := parent[path[-1]]) is not None:
        path.append(previous)
    return path[::-1]


def _expanded(cycle: list[int], paths: dict[tuple[int, int], Path]) -> list[int]:
    """The cycle over restored tasks with the stored tasks of each step through them put back."""
    full = [cycle[0]]
    for source, target in pairwise(cycle):
        full.extend(paths.get((source, target), []))
        full.append(target)
    return full
