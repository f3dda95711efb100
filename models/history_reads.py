"""Reading the task history (models.history): the newest changes of one task or of many tasks at once (what a
list of tasks asks for when each of its tasks selects its history: GraphQL `Task.history` over a whole job),
never more than a page of them per task, however long a task's history is.

A task's history has no bound of its own (a task changed by a tool every second for a month holds millions of
changes), so every read takes a page size (`last`): at most `last` changes per task come back, and MongoDB reads
at most `last` + 1 of each task (one more says whether older ones were left out). Many tasks are read in one
query over the `(task, _id)` index, stopped after `len(tasks) x last + 1` entries: when it stops short, every
task had at most `last` changes (the common case: one round trip); when it does not, the tasks it had not
finished are read by one aggregation that looks up each task's newest `last` + 1 changes on the index. Either
way the entries read are bounded by the answer's own bound."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING

from models.history import HISTORY, TaskChange, change_of
from models.scopes import JobScope, scope_filter, within
from models.stored_task import Database, RawDocument

HISTORY_BATCH_SIZE = 100_000
"""Entries come back in as few round trips as 16 MiB batches allow."""
LOOKUP_BATCH = 100_000
"""Tasks whose pages one aggregation looks up: their ids fill a few MB of its command (MongoDB takes 16 MiB)."""
_CHANGE_FIELDS = {"task": 1, "at": 1, "kind": 1, "fields": 1, "status": 1, "actor": 1}
"""What a TaskChange shows (and `_id`, its cursor): an entry's job is left in MongoDB."""


@dataclass(frozen=True)
class HistoryPage:
    """A task's newest recorded changes (at most the page size asked for), oldest first, and whether it has older
    ones that were left out."""

    changes: list[TaskChange]
    truncated: bool = False


async def read_history_pages(
    database: Database, task_ids: Collection[int], last: int, scope: JobScope = None, before: str | None = None
) -> dict[int, HistoryPage]:
    """Each task's newest `last` changes (`last` >= 1), oldest first, by task id, reading at most
    `len(task_ids) x last + 1` entries in one query, and for the tasks that query could not finish, `last` + 1
    each in one aggregation; only the changes made while the task was in a job of `scope`, when given, and only
    those older than the cursor `before` (a change's id), when given: the page before it. A task without any
    recorded change maps to an empty page."""
    wanted = sorted(set(task_ids))
    if not wanted:
        return {}
    older = {"_id": {"$lt": before}} if before is not None else None
    entries = await _oldest_first(database, wanted, len(wanted) * last + 1, scope, older)
    read: dict[int, list[RawDocument]] = {task_id: [] for task_id in wanted}
    for entry in entries:
        read[int(entry["task"])].append(entry)
    stopped_at = int(entries[-1]["task"]) if len(entries) > len(wanted) * last else None
    # Past the cap a task has more than `last` changes: from the task read last on, they may not be whole.
    unfinished = [task_id for task_id in wanted if stopped_at is not None and task_id >= stopped_at]
    pages = {task_id: _page(read[task_id], last) for task_id in wanted[: len(wanted) - len(unfinished)]}
    if unfinished:
        newest = await _newest_first(database, unfinished, last + 1, scope, older)
        pages.update((task_id, _page(list(reversed(newest[task_id])), last)) for task_id in unfinished)
    return pages


def _page(oldest_first: list[RawDocument], last: int) -> HistoryPage:
    return HistoryPage([change_of(entry) for entry in oldest_first[-last:]], len(oldest_first) > last)


async def _oldest_first(
    database: Database, task_ids: list[int], at_most: int, scope: JobScope, older: RawDocument | None
) -> list[RawDocument]:
    """The tasks' changes by task, then oldest first (the order of the `(task, _id)` index), `at_most` of them."""
    cursor = database.get_collection(HISTORY).find(
        within({"task": {"$in": task_ids}, **(older or {})}, scope_filter(scope, "job")),
        _CHANGE_FIELDS,
        sort=[("task", ASCENDING), ("_id", ASCENDING)],
        limit=at_most,
        batch_size=min(at_most, HISTORY_BATCH_SIZE),
    )
    return await cursor.to_list(None)


async def _newest_first(
    database: Database, task_ids: list[int], each: int, scope: JobScope, older: RawDocument | None
) -> dict[int, list[RawDocument]]:
    """Each task's `each` newest changes, newest first: one aggregation per LOOKUP_BATCH tasks (the ids are in
    the command, which MongoDB takes up to 16 MiB), each task's looked up on the `(task, _id)` index and stopped
    after `each` entries."""
    kept = scope_filter(scope, "job")
    lookup = [
        *([{"$match": older}] if older else []),
        *([{"$match": kept}] if kept else []),
        {"$sort": {"_id": DESCENDING}},
        {"$limit": each},
        {"$project": _CHANGE_FIELDS},
    ]
    looked_up = {"from": HISTORY, "localField": "task", "foreignField": "task", "pipeline": lookup, "as": "c"}
    newest: dict[int, list[RawDocument]] = {}
    for start in range(0, len(task_ids), LOOKUP_BATCH):
        tasks = [{"task": task_id} for task_id in task_ids[start : start + LOOKUP_BATCH]]
        cursor = await database.aggregate([{"$documents": tasks}, {"$lookup": looked_up}])
        newest.update([(int(found["task"]), found["c"]) async for found in cursor])
    return newest
