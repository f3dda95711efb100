"""The durable history of every task: one `task_history` entry per change, from the change stream, so changes
written directly by ops tooling are recorded too. This module holds what writer and readers share: the
collections' names, an entry's layout (`entry_of`, `skipped_entry`) and how it reads (`change_of`), the indexes.
The writer is models.history_writer, the reads models.history_reads. Entries expire after TRACKING_HISTORY_DAYS
(a TTL index on `at`).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson.int64 import Int64
from pymongo import ASCENDING, IndexModel
from pymongo.errors import OperationFailure, PyMongoError

from models.changes import Skipped
from models.documents import HistoryEntry, Lease
from models.events import TaskEvent
from models.stored_task import Collection, Database, RawDocument

log = logging.getLogger(__name__)

HISTORY = HistoryEntry.Settings.name
LEASES = Lease.Settings.name
_TTL_INDEX = "at_ttl"
GAP = "GAP"
SKIPPED = "SKIPPED"


async def give_up_lease(leases: Collection, lease_id: str, owner: str) -> None:
    """The lease `lease_id` (in LEASES: the history writer's, the retention purge's) expires now if `owner` holds
    it, so that any other candidate takes it at its next try; when MongoDB does not answer, it expires in time."""
    with contextlib.suppress(PyMongoError):
        await leases.update_one({"_id": lease_id, "owner": owner}, {"$set": {"expires": datetime.now(UTC)}})


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


def ttl_index(retention_days: int) -> IndexModel:
    """Entries expire `retention_days` after `at`: the one index of the history that is a setting, so not
    declared on HistoryEntry (whose indexes are created at start: models.documents)."""
    return IndexModel([("at", ASCENDING)], name=_TTL_INDEX, expireAfterSeconds=retention_days * 86_400)


async def prepare_history(database: Database, retention_days: int) -> None:
    """Create the history's TTL index; a changed retention updates it in place."""
    history = database.get_collection(HISTORY)
    try:
        await history.create_indexes([ttl_index(retention_days)])
    except OperationFailure as error:
        if error.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict: another retention
            raise
        index = {"name": _TTL_INDEX, "expireAfterSeconds": retention_days * 86_400}
        await database.command("collMod", HISTORY, index=index)


def entry_of(event: TaskEvent) -> RawDocument:
    entry: RawDocument = {
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


def change_of(entry: RawDocument) -> TaskChange:
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


def skipped_entry(skipped: Skipped) -> RawDocument:
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
