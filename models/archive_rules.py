"""The graph rules an archive must keep to be restored, checked in memory before MongoDB is asked (no MongoDB
here): every task's `_id` an int64 > 0, no `_id` twice (nor a history entry's), `nexts` and `previous` arrays
of int64 ids > 0, each once, none the task's own. Each refusal is one InvalidOperation naming the file and
line (or the task's rank) and what is wrong; nothing is written.

One-sided links between tasks of the archive (1.nexts holds 2, 2.previous lacks 1, or the mirror) are
completed, as `tracking-gateway check --repair` completes them in the database: the link stays and both sides
say so. Links closing a cycle are refused by models.restore, which also sees the stored tasks the archive
links to.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bson.int64 import Int64

from models.archive import JobArchive
from models.errors import InvalidOperation
from models.stored_task import LINK_FIELDS, TaskDoc, is_int64_id

Link = tuple[int, int]
"""(source, target): the source's `nexts` holds the target, the target's `previous` the source."""


@dataclass(frozen=True)
class CheckedTasks:
    tasks: list[TaskDoc]
    """The archive's tasks, in its order; those whose links were completed are copies."""
    completed: list[Link]
    """The links one side of which the archive lacked, now on both."""


def checked_tasks(archive: JobArchive) -> CheckedTasks:
    """The tasks to restore; InvalidOperation naming the first task that breaks a rule of the module's."""
    first_at: dict[int, int] = {}
    for index, doc in enumerate(archive.tasks):
        task_id = _checked_id(archive, index, doc)
        if task_id in first_at:
            raise InvalidOperation(
                f"{archive.where(index)}: task {task_id} appears twice in the archive (first at "
                f"{archive.where(first_at[task_id])}); nothing was restored"
            )
        first_at[task_id] = index
        for name in LINK_FIELDS:
            _check_links(archive, index, task_id, name, doc.get(name, _MISSING))
    _refuse_repeated_entries(archive)
    return _completed(archive.tasks)


def _refuse_repeated_entries(archive: JobArchive) -> None:
    """A history entry's `_id` twice would make MongoDB refuse the insert halfway: named here instead."""
    first_at: dict[str, int] = {}
    for index, entry in enumerate(archive.history):
        if "_id" not in entry:
            raise InvalidOperation(f"{archive.where_entry(index)}: a history entry without _id; nothing was restored")
        key = repr(entry["_id"])  # any BSON value, unhashable ones (a document) included
        if key in first_at:
            raise InvalidOperation(
                f"{archive.where_entry(index)}: history entry {entry['_id']!r} appears twice in the archive (first "
                f"at {archive.where_entry(first_at[key])}); nothing was restored"
            )
        first_at[key] = index


_MISSING = object()


def _checked_id(archive: JobArchive, index: int, doc: TaskDoc) -> int:
    task_id: Any = doc.get("_id")
    if not is_int64_id(task_id):
        raise InvalidOperation(
            f"{archive.where(index)}: _id {_shown(task_id)} is no task id (an int64 > 0); nothing was restored"
        )
    return int(task_id)


def _check_links(archive: JobArchive, index: int, task_id: int, name: str, value: Any) -> None:
    where = f"{archive.where(index)}: task {task_id}"
    if not isinstance(value, list):
        shown = "missing" if value is _MISSING else _shown(value)
        raise InvalidOperation(f"{where}: {name} is {shown}, not an array of task ids; nothing was restored")
    seen: set[int] = set()
    for item in value:
        if not is_int64_id(item):
            raise InvalidOperation(
                f"{where}: {name} holds {_shown(item)}, no task id (an int64 > 0); nothing was restored"
            )
        if item == task_id:
            raise InvalidOperation(f"{where}: {name} links the task to itself; nothing was restored")
        if item in seen:
            raise InvalidOperation(f"{where}: {name} names task {item} twice; nothing was restored")
        seen.add(item)


def _shown(value: Any) -> str:
    """A value as the archive holds it, for an error: `'7' (a string)`, `0 (an int64)`, `7.0 (a double)`."""
    if type(value) is int:  # plain JSON: BSON would store it as int32 or int64 by its size, not as the layout says
        if not -(2**63) <= value < 2**63:
            return f"{value} (a number past int64)"
        return f'{value} (a plain number: the layout wants {{"$numberLong": "{value}"}})'
    kinds = {bool: "a boolean", Int64: "an int64", float: "a double", str: "a string", type(None): "null"}
    kind = kinds.get(type(value), f"of type {type(value).__name__}")
    return f"{int(value) if type(value) is Int64 else repr(value)} ({kind})"


def _completed(tasks: list[TaskDoc]) -> CheckedTasks:
    """Each link inside the archive on both sides (ids already checked)."""
    by_id = {doc["_id"]: doc for doc in tasks}
    missing: dict[tuple[int, str], list[int]] = {}
    completed: list[Link] = []
    for source, target in _links_within(tasks, by_id):
        for task_id, array, other in ((source, "nexts", target), (target, "previous", source)):
            if other not in by_id[task_id][array]:
                missing.setdefault((task_id, array), []).append(other)
                if (source, target) not in completed[-1:]:
                    completed.append((source, target))
    if not missing:
        return CheckedTasks(tasks, [])
    copies: dict[int, TaskDoc] = {}
    for (task_id, array), ids in missing.items():
        copy = copies.setdefault(task_id, dict(by_id[task_id]))
        copy[array] = [*copy[array], *map(Int64, ids)]
    return CheckedTasks([copies.get(doc["_id"], doc) for doc in tasks], completed)


def _links_within(tasks: list[TaskDoc], by_id: dict[int, TaskDoc]) -> Iterator[Link]:
    """Every link between two tasks of the archive, as either side states it, once."""
    links: dict[Link, None] = {}
    for doc in tasks:
        for other in doc["nexts"]:
            if other in by_id:
                links[(doc["_id"], other)] = None
        for other in doc["previous"]:
            if other in by_id:
                links[(other, doc["_id"])] = None
    return iter(links)
