"""The durable history of every task: one `task_history` entry per change, from the change stream, so changes
written directly by ops tooling are recorded too. This module holds what writer and readers share: the
collections' names, an entry's layout (`entry_of`, `skipped_entry`) and how it reads (`change_of`), the indexes.
The writer is models.history_writer, the reads models.history_reads. Entries expire after TRACKING_HISTORY_DAYS
(a TTL index on `at`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson.int64 import Int64
from pymongo import ASCENDING, IndexModel
from pymongo.errors import OperationFailure

from models.changes import Skipped
from models.events import TaskEvent
from models.idempotency import IdempotencyRecord
from models.stored_task import Database, TaskDoc
from models.task import TaskCounter, TaskRecord

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

HISTORY = "task_history"
LEASES = "task_history_lease"
COLLECTIONS = (TaskRecord.Settings.name, TaskCounter.Settings.name, HISTORY, LEASES, IdempotencyRecord.Settings.name)
"""Every collection the gateway keeps in its database: tasks, counters (and link locks), history and its lease,
creates' idempotency keys."""
_TTL_INDEX = "at_ttl"
GAP = "GAP"
SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class TaskChange:
    cursor: str
    at: datetime
    kind: str
    """CREATED, UPDATED or DELETED."""
    changed_fields: list[str]
    status: str | None
    actor: str | None = None
    """Who made the change through the gateway: a token's name or a JWT's subject; None for a tool's change."""
    actor_issuer: str | None = None
    """The OpenID issuer of a JWT actor; None for tokens and tools."""


def history_indexes(retention_days: int) -> list[IndexModel]:
    return [
        IndexModel([("task", ASCENDING), ("_id", ASCENDING)], name="task_id"),
        IndexModel([("at", ASCENDING)], name=_TTL_INDEX, expireAfterSeconds=retention_days * 86_400),
    ]


async def prepare_history(database: Database, retention_days: int) -> None:
    """Create the history's indexes; a changed retention updates the TTL index in place."""
    history = database.get_collection(HISTORY)
    try:
        await history.create_indexes(history_indexes(retention_days))
    except OperationFailure as error:
        if error.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict: another retention
            raise
        index = {"name": _TTL_INDEX, "expireAfterSeconds": retention_days * 86_400}
        await database.command("collMod", HISTORY, index=index)


def entry_of(event: TaskEvent) -> TaskDoc:
    entry: TaskDoc = {
        "_id": event.cursor,
        "task": Int64(event.task_id),
        "job": event.job_id,
        "kind": event.kind.value,
        "fields": event.changed_fields,
        "at": event.at,
    }
    if event.status is not None:
        entry["status"] = event.status
    if event.actor is not None:
        entry["actor"] = event.actor
    return entry


def change_of(entry: TaskDoc) -> TaskChange:
    stored_actor = entry.get("actor")
    actor: dict[str, Any] = stored_actor if isinstance(stored_actor, dict) else {}
    return TaskChange(
        entry["_id"],
        entry["at"],
        entry["kind"],
        list(entry.get("fields") or ()),
        entry.get("status"),
        actor.get("name"),
        actor.get("issuer"),
    )


def skipped_entry(skipped: Skipped) -> TaskDoc:
    """The entry of a change stepped over (models.changes): which task, when, and why it is not recorded."""
    task = Int64(skipped.task_id) if skipped.task_id is not None else None
    return {
        "_id": skipped.token["_data"],
        "task": task,
        "job": None,
        "kind": SKIPPED,
        "fields": [],
        "at": skipped.at,
        "reason": skipped.reason,
    }
