"""The durable history of every task: one `task_history` entry per change, from the change stream, so changes
written directly by ops tooling are recorded too.

Exactly one writer among all gateway instances: a lease (the `task_history_lease` document, renewed every
few seconds, taken over once it expired) picks it. The writer saves the stream's resume token with each batch
of entries, so a new writer goes on where the last one stopped; each entry's `_id` is its change's resume token,
so a change written twice during a hand-over is stored once. If the oplog no longer holds the resume point,
the writer records a GAP entry and logs it, then goes on from now. Entries expire after TRACKING_HISTORY_DAYS
(a TTL index on `at`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson.int64 import Int64
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from models.events import EXPIRED_CURSOR_CODES, TaskEvent, change_stream_pipeline, event_from_change
from models.layout import Collection, Database, TaskDoc

log = logging.getLogger(__name__)

HISTORY = "task_history"
LEASES = "task_history_lease"
_LEASE_ID = "writer"
_TTL_INDEX = "at_ttl"
GAP = "GAP"


@dataclass(frozen=True)
class TaskChange:
    cursor: str
    at: datetime
    kind: str
    """CREATED, UPDATED or DELETED."""
    changed_fields: list[str]
    status: str | None


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
    return entry


def change_of(entry: TaskDoc) -> TaskChange:
    return TaskChange(entry["_id"], entry["at"], entry["kind"], list(entry.get("fields") or ()), entry.get("status"))


async def read_history(database: Database, task_id: int) -> list[TaskChange]:
    """A task's changes, oldest first (resume tokens sort in the order of the changes)."""
    history = database.get_collection(HISTORY)
    cursor = history.find({"task": task_id}, sort=[("_id", ASCENDING)])
    return [change_of(entry) async for entry in cursor]


class HistoryWriter:
    """Runs in every gateway; writes only while it holds the lease."""

    def __init__(
        self,
        database: Database,
        owner: str,
        *,
        lease_s: float = 10.0,
        flush_s: float = 0.5,
        batch: int = 1000,
        full_document: str = "updateLookup",
    ) -> None:
        self._tasks: Collection = database.get_collection("tasks")
        self._history: Collection = database.get_collection(HISTORY)
        self._leases: Collection = database.get_collection(LEASES)
        self.owner = owner
        self.lease_s = lease_s
        self.flush_s = flush_s
        self.batch = batch
        self.written = 0
        self._full_document = full_document

    async def run(self) -> None:
        """Until cancelled: wait for the lease, then write history while it is held."""
        while True:
            try:
                if await self._take_lease():
                    await self._write_while_leading()
                    continue
            except PyMongoError as error:
                log.warning("task history writer %s: %s; trying again", self.owner, error)
            await asyncio.sleep(self.lease_s / 3)

    async def _take_lease(self) -> bool:
        now = datetime.now(UTC)
        try:
            await self._leases.find_one_and_update(
                {"_id": _LEASE_ID, "$or": [{"owner": self.owner}, {"expires": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires": now + timedelta(seconds=self.lease_s)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # another writer holds it
        return True

    async def _renew(self, token: Any) -> bool:
        """Keep the lease and save how far the history goes; False once another writer took over."""
        now = datetime.now(UTC)
        renewed = await self._leases.update_one(
            {"_id": _LEASE_ID, "owner": self.owner},
            {"$set": {"expires": now + timedelta(seconds=self.lease_s), "resumeToken": token}},
        )
        return renewed.matched_count == 1

    async def _write_while_leading(self) -> None:
        lease = await self._leases.find_one({"_id": _LEASE_ID})
        token = (lease or {}).get("resumeToken")
        log.info("task history writer %s leads%s", self.owner, " (resuming)" if token else "")
        async with await self._open(token) as stream:
            pending: list[TaskDoc] = []
            renew_at = flush_at = time.monotonic()
            while stream.alive:
                change = await stream.try_next()
                if change is not None:
                    event = event_from_change(change)
                    if event is not None:
                        pending.append(entry_of(event))
                now = time.monotonic()
                if pending and (change is None or len(pending) >= self.batch or now >= flush_at):
                    await self._write(pending)
                    pending = []
                    flush_at = now + self.flush_s
                    renew_at = now  # save the token right after what it covers is written
                if not pending and now >= renew_at:
                    if not await self._renew(stream.resume_token):
                        log.info("task history writer %s lost the lease", self.owner)
                        return
                    renew_at = now + self.lease_s / 3

    async def _open(self, token: Any) -> AsyncChangeStream[TaskDoc]:
        try:
            return await self._watch(token)
        except OperationFailure as error:
            if token is None or error.code not in EXPIRED_CURSOR_CODES:
                raise
        stream = await self._watch(None)
        await self._record_gap(token)
        return stream

    async def _watch(self, token: Any) -> AsyncChangeStream[TaskDoc]:
        return await self._tasks.watch(
            change_stream_pipeline(None),
            full_document=self._full_document,
            full_document_before_change="whenAvailable",
            resume_after=token,
            max_await_time_ms=int(self.flush_s * 1000),
        )

    async def _record_gap(self, token: Any) -> None:
        now = datetime.now(UTC)
        log.error(
            "task history has a GAP: the oplog no longer holds the changes after %s; history resumes from %s",
            token,
            now.isoformat(),
        )
        gap = {"_id": f"gap-{now.isoformat()}", "task": None, "kind": GAP, "fields": [], "at": now, "after": token}
        await self._history.insert_one(gap)

    async def _write(self, entries: list[TaskDoc]) -> None:
        try:
            await self._history.insert_many(entries, ordered=False)
        except BulkWriteError as error:
            # A change the previous writer already stored (its _id is the change's resume token): harmless.
            if any(item.get("code") != 11000 for item in error.details.get("writeErrors", [])):
                raise
        self.written += len(entries)
