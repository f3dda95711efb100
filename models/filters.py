"""Which tasks a listing keeps: `status` (any of), `statusNot` (none of) and `type` (exact; a missing type counts
as "task"), as a MongoDB filter and, for tasks already in memory, as a test. Both follow one rule."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from models.errors import InvalidOperation
from models.stored_task import TaskDoc
from models.task import DEFAULT_TYPE

NAME_FILTER_MAX = 200
"""Longest `name` a task page may be filtered by, in characters: each task of the job is matched against it."""


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


def name_filter(contains: str | None) -> dict[str, Any]:
    """The MongoDB filter for tasks whose name holds `contains`, ignoring case (a literal: regex characters are
    escaped), empty when nothing is asked; InvalidOperation when it is longer than NAME_FILTER_MAX.
    A substring, not a prefix: people remember a part of a name ("deploy" in "eu-west deploy api")."""
    if not contains:
        return {}
    if len(contains) > NAME_FILTER_MAX:
        raise InvalidOperation(f"name filter: {len(contains)} characters, more than {NAME_FILTER_MAX}")
    return {"name": {"$regex": re.escape(contains), "$options": "i"}}
