"""A job's roots as a caller sees them (Job.roots). A caller allowed every job sees the tasks stored with `root`
true. A caller limited to some jobs (models.scopes) sees those, and also each task of the job whose previous
tasks it sees none of: a task waiting only on tasks outside its scope starts the graph it is shown, so a job
whose stored roots lie elsewhere still shows where it begins. Only what the caller sees decides: a task whose
previous tasks are all hidden is a root just as one without any, and no task outside the scope is read."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from models.stored_task import TaskDoc


def stored_roots(tasks: Sequence[TaskDoc]) -> list[TaskDoc]:
    """The tasks stored as roots (`root` true)."""
    return [task for task in tasks if task.get("root") is True]


def previous_elsewhere(tasks: Sequence[TaskDoc]) -> set[int]:
    """The previous tasks of the tasks not stored as roots that are not among `tasks`: whether the caller sees
    them decides whether those tasks are roots to it."""
    ids = {task["_id"] for task in tasks}
    return {
        previous_id
        for task in tasks
        if task.get("root") is not True
        for previous_id in task.get("previous") or ()
        if previous_id not in ids
    }


def roots_seen(tasks: Sequence[TaskDoc], seen_elsewhere: Collection[int]) -> list[TaskDoc]:
    """The roots of a job whose tasks a scoped caller sees are `tasks`, and which also sees the tasks
    `seen_elsewhere` of other jobs: the stored roots, and the tasks none of whose previous tasks it sees."""
    seen = {task["_id"] for task in tasks} | set(seen_elsewhere)
    return [
        task
        for task in tasks
        if task.get("root") is True or not any(previous_id in seen for previous_id in task.get("previous") or ())
    ]
