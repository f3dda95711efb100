"""Reading the task history (models.history): one task's recorded changes, and those of many tasks at once (what
a list of tasks asks for when each of its tasks selects its history: GraphQL `Task.history` over a whole job)."""

from __future__ import annotations

from collections.abc import Collection

from pymongo import ASCENDING

from models.history import HISTORY, TaskChange, change_of
from models.scopes import JobScope, scope_filter, within
from models.stored_task import Database

HISTORY_BATCH_SIZE = 100_000
"""Entries come back in as few round trips as 16 MiB batches allow."""
_CHANGE_FIELDS = {"task": 1, "at": 1, "kind": 1, "fields": 1, "status": 1, "actor": 1}
"""What a TaskChange shows (and `_id`, its cursor): an entry's job is left in MongoDB."""


async def read_history(database: Database, task_id: int) -> list[TaskChange]:
    """A task's changes, oldest first (resume tokens sort in the order of the changes)."""
    history = database.get_collection(HISTORY)
    cursor = history.find({"task": task_id}, sort=[("_id", ASCENDING)])
    return [change_of(entry) async for entry in cursor]


async def read_histories(
    database: Database, task_ids: Collection[int], scope: JobScope = None
) -> dict[int, list[TaskChange]]:
    """Each task's changes, oldest first, by task id: one query over the `task_id` index (task, then resume
    token, the order of the changes) for every task, whatever their number; only the changes made while the task
    was in a job of `scope`, when given. A task without any recorded change maps to an empty list."""
    wanted = sorted(set(task_ids))
    histories: dict[int, list[TaskChange]] = {task_id: [] for task_id in wanted}
    if not wanted:
        return histories
    history = database.get_collection(HISTORY)
    cursor = history.find(
        within({"task": {"$in": wanted}}, scope_filter(scope, "job")),
        _CHANGE_FIELDS,
        sort=[("task", ASCENDING), ("_id", ASCENDING)],
        batch_size=HISTORY_BATCH_SIZE,
    )
    for entry in await cursor.to_list(None):
        histories[int(entry["task"])].append(change_of(entry))
    return histories
