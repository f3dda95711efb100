"""Which tasks a listing keeps: `status` (any of), `statusNot` (none of) and `type` (exact; a missing type counts
as "task"), as a MongoDB filter and, for tasks already in memory, as a test. Both follow one rule."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from models.layout import TaskDoc
from models.task import DEFAULT_TYPE


def task_filter(
    statuses: Collection[str] | None = None, task_type: str | None = None, statuses_not: Collection[str] | None = None
) -> dict[str, Any]:
    """The MongoDB filter (a dict, empty when nothing is asked) for the tasks `task_matches` keeps."""
    query: dict[str, Any] = {}
    status: dict[str, Any] = {}
    if statuses:
        status["$in"] = list(statuses)
    if statuses_not:
        status["$nin"] = list(statuses_not)
    if status:
        query["status"] = status
    if task_type is not None:
        query["type"] = {"$in": [task_type, None]} if task_type == DEFAULT_TYPE else task_type
    return query


def task_matches(
    doc: TaskDoc,
    statuses: Collection[str] | None = None,
    task_type: str | None = None,
    statuses_not: Collection[str] | None = None,
) -> bool:
    """Whether a task in memory passes: a status among `statuses` (when given), none among `statuses_not`, and
    its type (DEFAULT_TYPE when absent) equal to `task_type` (when given)."""
    if statuses and doc.get("status") not in statuses:
        return False
    if statuses_not and doc.get("status") in statuses_not:
        return False
    return task_type is None or doc.get("type", DEFAULT_TYPE) == task_type
