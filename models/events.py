"""Task events from MongoDB change streams: what a subscription delivers and what the history records.

A change stream sees every change to `tasks`, whoever made it (a gateway, ops tooling), through any gateway
instance. Each event's cursor is its resume token: MongoDB can reopen a stream right after it, replaying what
followed from the oplog, which is what makes subscriptions resumable without a gap or a duplicate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pymongo.errors import OperationFailure

from models.actors import actor_of, marks_deletion, wrote_changed_by
from models.changes import Change, Idle, Skipped, StreamItem, StreamRequest, change_time, read_changes
from models.errors import CursorExpired
from models.scopes import JobScope, in_scope
from models.stored_task import LINK_FIELDS, Collection, TaskDoc, as_task_id, readable_projected_task, readable_value
from models.task import RESPONSE_FIELD_ORDER

log = logging.getLogger(__name__)


class TaskEventKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    SKIPPED = "SKIPPED"
    """A change that could not be delivered or read (models.changes): reload the task to see its state."""


EXPIRED_CURSOR_CODES = frozenset({2, 9, 15, 136, 260, 280, 286})
"""BadValue, FailedToParse, Overflow, CappedPositionLost, InvalidResumeToken, ChangeStreamFatalError,
ChangeStreamHistoryLost: the resume point is malformed or gone."""


def refuses_resume_point(error: OperationFailure) -> bool:
    """Whether MongoDB refused a change stream's resume point as malformed or gone: one of the codes above, or an
    assertion of its resume-token decoding (code name `Location<n>`: "KeyString format error", "Resume Token
    does not contain version", …), which a cursor of the right form but not made by MongoDB meets. Those have
    no code of their own and never mean an outage (whose errors all have named codes): retried as one, a
    subscription after such a cursor failed for TRACKING_SUBSCRIPTION_RESUME_MS, then said UNAVAILABLE, and its
    client resubscribed with the same cursor."""
    code_name = (error.details or {}).get("codeName")
    return error.code in EXPIRED_CURSOR_CODES or (isinstance(code_name, str) and code_name.startswith("Location"))


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
    """The task's job (after the change, else before it) when stored as a string: the job scopes read the history
    by it, and a job of another type is in no scope (models.scopes), though readers serve a number as its text."""
    status: str | None
    """The task's new status when this change set it."""
    actor: dict[str, Any] | None = None
    """Who made the change through the gateway (`{name, issuer}`, models.actors); None for a tool's change."""
    derived: dict[object, object] = field(default_factory=dict, compare=False, repr=False)
    """What a front end derives from this event once for all the subscriptions it reaches (their answer, its
    encoding), keyed by that front end: it lives as long as the event, which subscriptions' buffers share."""


_LEFT_SCOPE = "left the scope"
"""The key, in an event's `derived`, of the event as the callers of a scope see it once the task left it."""


def seen_in_scope(event: TaskEvent, scope: JobScope) -> TaskEvent:
    """The event as a caller limited to `scope` may see it. A change that took the task out of the scope reaches
    that caller (it sees the task leave) without the task as it now is, which belongs to a job the caller may
    not see (its job id included): its `task` is None, as for a deletion, and of the fields it changed only the
    job is named. Made once per event and scope, shared by the subscriptions of that scope (their answers are
    derived from it once)."""
    if event.task is None or in_scope(event.job_id, scope):
        return event
    key = (_LEFT_SCOPE, scope)
    seen = event.derived.get(key)
    if not isinstance(seen, TaskEvent):
        leaving = [name for name in event.changed_fields if name == "job-id"]  # what else changed is not its to know
        seen = event.derived[key] = dataclasses.replace(
            event, task=None, job_id=None, changed_fields=leaving, status=None, derived={}
        )
    return seen


def full_document_mode(keeps_images: bool) -> str:
    """Each change with the task as that change left it (its post-image) where the collection keeps images,
    else as it is when the change is read. (Streams also ask for the task before a deletion, for job filters.)"""
    return "whenAvailable" if keeps_images else "updateLookup"


SUBSCRIBER_FIELDS: tuple[str, ...] = ("_id", *FIELD_ORDER)
"""What a subscription's events carry of the task: every field readers serve (a tool's own fields are not)."""
HISTORY_FIELDS: tuple[str, ...] = ("_id", "job-id", "status")
"""What the history writer reads of the task: its entries name the job and the new status."""
HISTORY_LINKS: tuple[str, ...] = tuple(name for name in HISTORY_FIELDS if name in LINK_FIELDS)
"""The link fields among HISTORY_FIELDS (none): what `event_from_change` checks of a history event's task."""


def stream_request(
    collection: Collection,
    job_id: str | None,
    task_fields: Iterable[str],
    full_document: str,
    poll_ms: int,
    *,
    routed: bool = False,
) -> StreamRequest:
    """The change stream of the tasks (of one job, if given), each event projected to its identity, the
    `task_fields` of the task after it, the job it left and the names of the fields it changed. `routed`: each
    event also names its jobs (`jobs_of`), for a stream fanned out to the subscriptions of many jobs.

    The projection keeps events far under MongoDB's 16 MiB: the task's fields at most once, however large the
    task or the update (without it, an update of a 9 MB task carries both images and exceeds the limit)."""
    match: dict[str, Any] = {
        "operationType": {"$in": list(_KINDS)},
        # Changes of documents whose _id is no number are no task's (models.stored_task): not even read.
        "documentKey._id": {"$type": "number"},
    }
    projection: dict[str, Any] = {
        "operationType": 1,
        "documentKey": 1,
        # MongoDB 6.0+ gives every event its wallTime; clusterTime (decoded into a Python Timestamp, a cost per
        # event) only where it does not.
        "clusterTime": {"$cond": [{"$eq": [{"$type": "$wallTime"}, "date"]}, "$$REMOVE", "$clusterTime"]},
        "wallTime": 1,
        "fullDocumentBeforeChange.job-id": 1,
        **{f"fullDocument.{name}": 1 for name in task_fields},
        CHANGED: _changed_field_names(),
        NEW_STATUS: _new_status(),
        ACTOR: wrote_changed_by(),
        DELETION_MARK: marks_deletion(),
    }
    job_match = None
    if job_id is not None or routed:
        # The job before the change too, so that a deletion (or a task moved to another job) reaches the job's
        # subscribers.
        projection[JOBS] = list(_JOB_IDS)
        projection[LISTED_JOBS] = {"$concatArrays": [_elements(job_ids) for job_ids in _JOB_IDS]}
    if job_id is not None:
        job_match = {"$or": [{JOBS: job_id}, {LISTED_JOBS: job_id}]}
    probe = {JOBS: _small_jobs(_JOB_IDS), LISTED_JOBS: _small_jobs(projection[LISTED_JOBS])} if routed else None
    return StreamRequest(collection, match, projection, job_match, full_document, poll_ms, probe)


_PROBED_JOB_BYTES = 1024


_JOB_IDS = ("$fullDocument.job-id", "$fullDocumentBeforeChange.job-id")
"""The task's job after the change and before it: a deletion (or a task moved to another job) reaches the job's
subscribers too."""


def _elements(job_id: str) -> dict[str, Any]:
    """The elements of a job-id a tool stored as an array (none for any other value)."""
    return {"$cond": [{"$isArray": job_id}, job_id, []]}


def _small_jobs(jobs: Any) -> dict[str, Any]:
    """`jobs` (an array expression) for a probe: each job id over 1 KiB as null (two 8 MB job ids are what can
    make a change undeliverable in the first place); such a change reaches the unfiltered subscriptions only."""
    small = {
        "$and": [
            {"$eq": [{"$type": "$$this"}, "string"]},
            {"$lte": [{"$strLenBytes": "$$this"}, _PROBED_JOB_BYTES]},
        ]
    }
    return {"$map": {"input": jobs, "in": {"$cond": [small, "$$this", None]}}}


def jobs_of(item: Change | Skipped) -> frozenset[str]:
    """The jobs a change concerns (the task's job after it and before it), as a job-filtered stream matches
    them, and as a caller's job scope reads them: a task whose job-id a tool stored as an array is in none
    (`listed_jobs_of`). Empty when unknown (a skipped change read without them)."""
    return _strings(item, JOBS)


def listed_jobs_of(item: Change | Skipped) -> frozenset[str]:
    """The job ids in a job-id a tool stored as an array, after the change and before it: the subscriptions of
    these jobs hear of it too (to callers allowed every job the task belongs to each, as queries read it), but
    no job scope holds it (docs/reference/stored-layout.md)."""
    return _strings(item, LISTED_JOBS)


def _strings(item: Change | Skipped, field: str) -> frozenset[str]:
    document = item.document if isinstance(item, Change) else item.identity
    jobs = (document or {}).get(field)
    if not isinstance(jobs, list):
        return frozenset()
    # Exactly str: a job id of another BSON type (Code is a str, and unhashable) matches no job filter either.
    return frozenset(job for job in jobs if type(job) is str)


DELETION_MARK = "deletionMark"
"""The field of a projected event saying it is the mark a deletion writes first (models.actors): no event."""
ACTOR = "actor"
"""The field of a projected event holding the `changed-by` its change wrote (models.actors), or null."""
JOBS = "jobIds"
"""The field of a projected event holding the task's job after and before the change."""
LISTED_JOBS = "listedJobIds"
"""The field of a projected event holding the elements of the task's job-id after and before the change, where a
tool stored it as an array."""
CHANGED = "changedFields"
"""The field of a projected event listing the stored task fields its change set or removed."""
NEW_STATUS = "newStatus"
"""The field of a projected update event holding the status it set (so the status of each change is exact even
where the task is read as it is now); left out for a status over 4 KiB, which the task then gives."""
_STATUS_BYTES = 4096


def _new_status() -> dict[str, Any]:
    status = "$updateDescription.updatedFields.status"
    small = {
        "$cond": [
            {"$eq": [{"$type": status}, "string"]},
            {"$lte": [{"$strLenBytes": status}, _STATUS_BYTES]},
            {"$in": [{"$type": status}, ["int", "long", "double", "decimal", "bool", "null"]]},
        ]
    }
    return {"$cond": [small, status, "$$REMOVE"]}


def _names_of(document: str) -> dict[str, Any]:
    return {"$map": {"input": {"$objectToArray": {"$ifNull": [document, {}]}}, "in": "$$this.k"}}


def _replaced_names() -> dict[str, Any]:
    """A replacement changed the fields whose values differ between the task before and after it (present in
    one only included); without the task before (no images kept), every field it holds."""
    before = {"$objectToArray": "$fullDocumentBeforeChange"}
    after = {"$objectToArray": "$fullDocument"}
    # A field differs when its (name, value) pair is on one side only ($getField takes no variable name in 6.0).
    differing = {
        "$setUnion": [
            {"$map": {"input": {"$setDifference": [after, before]}, "in": "$$this.k"}},
            {"$map": {"input": {"$setDifference": [before, after]}, "in": "$$this.k"}},
        ]
    }
    return {
        "$cond": [
            {"$eq": [{"$type": "$fullDocumentBeforeChange"}, "object"]},
            differing,
            _names_of("$fullDocument"),
        ]
    }


def _changed_field_names() -> dict[str, Any]:
    """The top-level names of the fields a change wrote that readers know (an insert or replace: every field it
    holds), computed by MongoDB so that a large update's values never travel."""
    updated = {"$objectToArray": {"$ifNull": ["$updateDescription.updatedFields", {}]}}
    truncated = {"$ifNull": ["$updateDescription.truncatedArrays", []]}
    update_paths = {
        "$concatArrays": [
            {"$map": {"input": updated, "in": "$$this.k"}},
            {"$ifNull": ["$updateDescription.removedFields", []]},
            {"$map": {"input": truncated, "in": "$$this.field"}},
        ]
    }
    # Only an update's paths may be dotted ("a.b" changed a): a document's own names are top-level already.
    update_names = {"$map": {"input": update_paths, "in": {"$arrayElemAt": [{"$split": ["$$this", "."]}, 0]}}}
    names = {
        "$switch": {
            "branches": [
                {"case": {"$eq": ["$operationType", "insert"]}, "then": _names_of("$fullDocument")},
                {"case": {"$eq": ["$operationType", "update"]}, "then": update_names},
                {"case": {"$eq": ["$operationType", "delete"]}, "then": []},
            ],
            "default": _replaced_names(),
        }
    }
    return {"$setIntersection": [names, list(FIELD_ORDER)]}


def event_from_change(change: dict[str, Any], links: tuple[str, ...] = LINK_FIELDS) -> TaskEvent | None:
    """The event of one (projected) change-stream document; None for a document whose _id is no task id.
    `links`: the link fields the stream's projection reads of the task (none for HISTORY_FIELDS).
    A change whose content cannot be read becomes a SKIPPED event rather than an error."""
    task_id = as_task_id((change.get("documentKey") or {}).get("_id"))
    if task_id is None or change.get(DELETION_MARK) is True:
        return None
    try:
        return _event(change, task_id, links)
    except Exception as error:  # any stored content at all: one change must never stop a stream
        log.exception("change of task %s cannot be read; delivered as SKIPPED", task_id)
        return skipped_event(Skipped(change["_id"], task_id, change_time(change), f"unreadable: {error}"))


def _event(change: dict[str, Any], task_id: int, links: tuple[str, ...]) -> TaskEvent:
    kind = _KINDS[change["operationType"]]
    stored = None if kind is TaskEventKind.DELETED else change.get("fullDocument")
    task = readable_projected_task(stored, links) if stored is not None else None
    before = change.get("fullDocumentBeforeChange") or {}
    job = (stored if stored is not None else before).get("job-id")
    changed = sorted(set(change.get(CHANGED) or ()) & _FIELD_POSITION.keys(), key=_FIELD_POSITION.__getitem__)
    status = None
    if "status" in changed and kind is not TaskEventKind.DELETED:
        status = readable_value("status", change[NEW_STATUS]) if NEW_STATUS in change else task and task.get("status")
    actor = actor_of(change.get(ACTOR))
    job_id = job if type(job) is str else None
    return TaskEvent(kind, task_id, task, change["_id"]["_data"], change_time(change), changed, job_id, status, actor)


def skipped_event(skipped: Skipped) -> TaskEvent | None:
    """What subscribers hear of a change stepped over: which task (reload it) and when; None when the change
    names no task (an `_id` that is a number but no task id), which concerns no subscriber."""
    if skipped.task_id is None:
        return None
    return TaskEvent(TaskEventKind.SKIPPED, skipped.task_id, None, skipped.token["_data"], skipped.at, [], None, None)


WATCH_POLL_MS = 1000
"""How long one getMore waits for a change before the stream reports where it is."""
WATCH_RETRY_S = 0.5
"""The pause before reopening an interrupted stream."""


def event_of(item: StreamItem) -> TaskEvent | None:
    """A subscriber's event for a stream item: None for a poll without a change or a change of no task."""
    if isinstance(item, Idle):
        return None
    if isinstance(item, Change):
        return event_from_change(item.document)
    return skipped_event(item)


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def is_event_cursor(cursor: str) -> bool:
    """Whether `cursor` has the form of MongoDB's resume tokens (hex, whole bytes, a KeyString that starts with a
    timestamp, 0x82): anything else is no cursor the gateway gave, refused at once rather than sent to MongoDB,
    whose refusals of malformed tokens do not all carry a code that says so."""
    return len(cursor) >= 4 and len(cursor) % 2 == 0 and cursor[:2] == "82" and _HEX_DIGITS.issuperset(cursor)


_UUID_MARK = b"\x5a\x10\x04"
"""In a resume token's KeyString, what starts a collection's UUID: BinData (0x5A) of 16 bytes (0x10), subtype 4."""


def cursor_collection(cursor: str) -> bytes | None:
    """The UUID of the collection whose change `cursor` (of is_event_cursor's form) is, or None for a cursor that
    names none (a position in the oplog: Query.eventCursor's, an idle stream's) or cannot be read here."""
    try:
        token = bytes.fromhex(cursor)
    except ValueError:
        return None
    at = token.find(_UUID_MARK, 9)  # after the 0x82 timestamp
    uuid = token[at + len(_UUID_MARK) : at + len(_UUID_MARK) + 16] if at >= 0 else b""
    return uuid if len(uuid) == 16 else None


FUTURE_CURSOR_S = 60
"""How far past the shared stream's position (now) a cursor's time may be: another gateway's stream may be a
little ahead of this one's; a cursor further ahead is no cursor MongoDB gave."""


def cursor_later_than(cursor: str, position: str, slack_s: int = FUTURE_CURSOR_S) -> bool:
    """Whether `cursor` (of is_event_cursor's form) names a time more than `slack_s` seconds after `position`
    (a resume token: MongoDB's seconds are the 8 hex digits after the 0x82). MongoDB resumes from a future time
    without a word: every change until then would be skipped, the subscription silent meanwhile."""
    try:
        return int(cursor[2:10], 16) > int(position[2:10], 16) + slack_s
    except ValueError:
        return False


async def collection_uuid(collection: Collection) -> bytes | None:
    """`collection`'s UUID as its change events' cursors name it; None where MongoDB does not say."""
    found = await (await collection.database.list_collections(filter={"name": collection.name})).to_list()
    uuid = found[0].get("info", {}).get("uuid") if found else None
    return bytes(uuid.bytes if isinstance(uuid, UUID) else uuid) if isinstance(uuid, UUID | bytes) else None


def cursor_expired() -> CursorExpired:
    return CursorExpired(
        "cursor expired: MongoDB no longer holds the events after it (or it is no event cursor); "
        "subscribe without `after` and reload what the view shows"
    )


CURSOR_POLL_MS = 1
"""How long the change stream behind `current_event_cursor` waits for an event: its first (empty) answer is
enough."""


async def current_event_cursor(tasks: Collection, full_document: str, job_id: str | None) -> str:
    """A cursor for this moment in the task events (of one job, if given): `watch_task_events(after=it)` gives
    every change made after it was taken. A view reads what it shows after taking one and subscribes with it,
    so no change falls between its read and its subscription's start (a subscription without `after` starts
    whenever MongoDB opens its stream). It is the stream's first resume token: MongoDB's postBatchResumeToken
    (a point in the oplog, no event) or, when a change came at once, that change's token."""
    request = stream_request(tasks, job_id, SUBSCRIBER_FIELDS, full_document, CURSOR_POLL_MS)
    async with contextlib.aclosing(read_changes(request, None)) as items:
        async for item in items:
            if item.token is not None:
                return str(item.token["_data"])
    raise RuntimeError("the change stream ended before it gave a position")  # read_changes never ends
