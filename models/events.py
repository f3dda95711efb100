"""Task events from MongoDB change streams: what a subscription delivers and what the history records.

A change stream sees every change to `tasks`, whoever made it (a gateway, ops tooling), through any gateway
instance. Each event's cursor is its resume token: MongoDB can reopen a stream right after it, replaying what
followed from the oplog, which is what makes subscriptions resumable without a gap or a duplicate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.errors import GraphError
from models.layout import LINK_FIELDS, TaskDoc, as_task_id, readable_task, readable_value
from models.task import RESPONSE_FIELD_ORDER


class TaskEventKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


class CursorExpired(GraphError):
    """An event cursor MongoDB cannot resume after: unknown, or older than the oplog still holds."""


EXPIRED_CURSOR_CODES = frozenset({2, 9, 15, 136, 260, 280, 286})
"""BadValue, FailedToParse, Overflow, CappedPositionLost, InvalidResumeToken, ChangeStreamFatalError,
ChangeStreamHistoryLost: the resume point is malformed or gone."""

_KINDS = {
    "insert": TaskEventKind.CREATED,
    "update": TaskEventKind.UPDATED,
    "replace": TaskEventKind.UPDATED,
    "delete": TaskEventKind.DELETED,
}
FIELD_ORDER: tuple[str, ...] = (*RESPONSE_FIELD_ORDER[1:], *LINK_FIELDS)
"""Every stored task field an event may name as changed, in the API's order."""
_FIELD_POSITION = {name: position for position, name in enumerate(FIELD_ORDER)}


@dataclass(frozen=True)
class TaskEvent:
    kind: TaskEventKind
    task_id: int
    task: TaskDoc | None
    """The task after the change (as readers see it); None once deleted."""
    cursor: str
    """The change's resume token: resume after it to get every later event."""
    at: datetime
    changed_fields: list[str]
    """Stored (API) names of the fields the change set or removed, in the API's order; links as nexts/previous."""
    job_id: str | None
    status: str | None
    """The task's new status when this change set it."""


def full_document_mode(keeps_images: bool) -> str:
    """Each change with the task as that change left it (its post-image) where the collection keeps images,
    else as it is when the change is read. (Streams also ask for the task before a deletion, for job filters.)"""
    return "whenAvailable" if keeps_images else "updateLookup"


def change_stream_pipeline(job_id: str | None) -> list[dict[str, Any]]:
    match: dict[str, Any] = {"operationType": {"$in": list(_KINDS)}}
    if job_id is not None:
        # The pre-image lets a deletion (or a task moved to another job) reach the job's subscribers.
        match["$or"] = [{"fullDocument.job-id": job_id}, {"fullDocumentBeforeChange.job-id": job_id}]
    return [{"$match": match}]


def event_from_change(change: dict[str, Any]) -> TaskEvent | None:
    """The event of one change-stream document; None for a document whose _id is no task id."""
    task_id = as_task_id(change["documentKey"]["_id"])
    if task_id is None:
        return None
    kind = _KINDS[change["operationType"]]
    stored = None if kind is TaskEventKind.DELETED else change.get("fullDocument")
    task = readable_task(stored) if stored is not None else None
    before = change.get("fullDocumentBeforeChange") or {}
    job = readable_value("job-id", (task or before).get("job-id"))
    changed = _changed_fields(change, stored)
    status = None
    if "status" in changed and kind is not TaskEventKind.DELETED:
        status = readable_value("status", _new_value(change, stored, "status"))
    return TaskEvent(kind, task_id, task, change["_id"]["_data"], _when(change), changed, job, status)


def _changed_fields(change: dict[str, Any], stored: TaskDoc | None) -> list[str]:
    operation = change["operationType"]
    if operation == "delete":
        return []
    if operation == "update":
        description = change.get("updateDescription") or {}
        paths = [*description.get("updatedFields", {}), *description.get("removedFields", [])]
        paths += [truncated["field"] for truncated in description.get("truncatedArrays", [])]
        names = {path.split(".", 1)[0] for path in paths}
    else:
        names = set(stored or ())
    return sorted((name for name in names if name in _FIELD_POSITION), key=_FIELD_POSITION.__getitem__)


def _new_value(change: dict[str, Any], stored: TaskDoc | None, name: str) -> Any:
    if change["operationType"] == "update":
        return (change.get("updateDescription") or {}).get("updatedFields", {}).get(name)
    return (stored or {}).get(name)


def _when(change: dict[str, Any]) -> datetime:
    """The change's wall-clock time as MongoDB recorded it (6.0+), else its cluster time's second."""
    wall = change.get("wallTime")
    if isinstance(wall, datetime):
        return wall
    return datetime.fromtimestamp(change["clusterTime"].time, tz=UTC)
