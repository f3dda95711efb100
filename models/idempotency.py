"""Idempotency keys of creates (the IETF draft "The Idempotency-Key HTTP Header Field"): a create sent with a key
is stored at most once for its caller, and sending it again answers what the first answered.

The record of a key is inserted in the create's own transaction, first (models.ids), so a key is recorded exactly
when its create committed. Whether a create with the key is in flight needs no marker of its own: MongoDB
refuses a second transaction's insert of the same record `_id` at once with a write conflict while the first is
uncommitted (IdempotencyKeyInFlight, 409), and with a duplicate key once it committed (the record is read and
replayed). A gateway that dies mid-create leaves no marker behind: MongoDB ends the transaction, and the key is
free again. docs/decisions/transaction-outcomes.md says why.

The record is small whatever the create's size: the ids (as runs of consecutive ids) and the creation time. The
answer is rebuilt from them and the request's own tasks, which the fingerprint proves equal to the first's:
the same documents the first request stored and rendered (models.creation.new_documents), whatever happened to
the tasks since.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from bson.int64 import Int64
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure

from models.creation import PlannedTask, Render, new_documents
from models.deadline import is_duplicate_key
from models.documents import IdempotencyRecord
from models.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, InvalidOperation, TaskAlreadyExists
from models.ids import FirstWrite
from models.stored_task import Collection, Database

IDEMPOTENCY_KEY_MAX = 255
"""Most characters an idempotency key may have (a UUID has 36)."""
_WRITE_CONFLICT = 112
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A key as its caller sent it, and who the caller is (an opaque, stable identity: web.auth)."""

    caller: str
    key: str

    def record_id(self) -> dict[str, str]:
        return {"caller": self.caller, "key": self.key}


@dataclass(frozen=True, slots=True)
class RecordedCreate:
    """What a committed create with a key left to answer again: its ids in plan order and its creation time."""

    ids: list[int]
    created: datetime


def checked_key(key: str, where: str) -> str:
    """The key, when it is 1 to IDEMPOTENCY_KEY_MAX characters that a Structured Field string may carry (visible
    ASCII and space, RFC 8941 section 3.3.3); else InvalidOperation naming `where`."""
    if not key:
        raise InvalidOperation(f"{where}: an idempotency key must not be empty")
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidOperation(f"{where}: an idempotency key has at most {IDEMPOTENCY_KEY_MAX} characters")
    wrong = next((char for char in key if not " " <= char <= "~"), None)
    if wrong is not None:
        raise InvalidOperation(f"{where}: U+{ord(wrong):04X} is not allowed in an idempotency key (visible ASCII only)")
    return key


def fingerprint(plan: Sequence[PlannedTask]) -> str:
    """What a create stores, as planned (fields with their defaults applied, given ids, nesting), hashed: equal
    for two requests that would store the same tasks, whatever their format (JSON, XML, GraphQL), field order
    or defaults sent or left out (`"type": "task"`, a nested task's parent's `job-id`)."""
    shape = [[item.fields, item.id, item.parent] for item in plan]
    return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()


def id_runs(ids: Iterable[int]) -> list[list[Int64]]:
    """`ids` as runs of consecutive ids, `[first, count]`: one run for a create of server-assigned ids."""
    runs: list[list[Int64]] = []
    for task_id in ids:
        if runs and runs[-1][0] + runs[-1][1] == task_id:
            runs[-1][1] = Int64(runs[-1][1] + 1)
        else:
            runs.append([Int64(task_id), Int64(1)])
    return runs


def ids_of_runs(runs: Iterable[Sequence[int]]) -> list[int]:
    return [task_id for first, count in runs for task_id in range(int(first), int(first) + int(count))]


class KeyRecorded(Exception):
    """The key's record exists already: a create with it committed before this one's transaction."""


class IdempotencyRecords:
    """The `idempotency_keys` collection."""

    def __init__(self, database: Database, hours: float) -> None:
        self._records: Collection = database.get_collection(IdempotencyRecord.Settings.name)
        self.hours = hours

    async def recorded(self, key: IdempotencyKey, digest: str) -> RecordedCreate | None:
        """The create recorded under `key`, if any; IdempotencyKeyReused when it had other tasks than `digest`."""
        record = await self._records.find_one({"_id": key.record_id()})
        if record is None:
            return None
        if record.get("fingerprint") != digest:
            raise IdempotencyKeyReused(key.key)
        return RecordedCreate(ids_of_runs(record["ids"]), record["created"])

    async def recorded_for(
        self, key: IdempotencyKey, plan: Sequence[PlannedTask], digest: str
    ) -> RecordedCreate | None:
        """`recorded`, for the plan and its `digest`; a record whose ids do not match the plan (edited by a tool)
        is another create's too."""
        recorded = await self.recorded(key, digest)
        if recorded is not None and len(recorded.ids) != len(plan):
            raise IdempotencyKeyReused(key.key)
        return recorded

    async def record(
        self, session: AsyncClientSession, key: IdempotencyKey, digest: str, ids: Sequence[int], created: datetime
    ) -> None:
        """Insert the key's record in the create's transaction. IdempotencyKeyInFlight when another transaction
        holds it uncommitted (MongoDB's write conflict: this transaction is not run again), KeyRecorded when a
        committed create holds it."""
        record: dict[str, Any] = {
            "_id": key.record_id(),
            "fingerprint": digest,
            "ids": id_runs(ids),
            "created": created,
            "expires": created + timedelta(hours=self.hours),
        }
        try:
            await self._records.insert_one(record, session=session)
        except OperationFailure as error:
            if error.code == _WRITE_CONFLICT:
                raise IdempotencyKeyInFlight(key.key) from None
            if is_duplicate_key(error):
                raise KeyRecorded() from None
            raise

    async def create_once(
        self,
        key: IdempotencyKey,
        plan: Sequence[PlannedTask],
        create: Callable[[FirstWrite], Awaitable[list[_T]]],
        render: Render[_T],
    ) -> list[_T]:
        """`create(first)` (models.graph_store), its key recorded by `first` in its transaction, unless a create with
        the same tasks committed under `key` before: then its tasks, rendered as they were created, and nothing
        stored. IdempotencyKeyReused for a key used with other tasks, IdempotencyKeyInFlight for one whose
        create is still running."""
        digest = fingerprint(plan)
        recorded = await self.recorded_for(key, plan, digest)
        if recorded is None:
            try:
                return await create(functools.partial(self.record, key=key, digest=digest))
            except (KeyRecorded, IdempotencyKeyInFlight):
                # Another create with the key committed meanwhile, or is committing: its answer, once it has one.
                recorded = await self.recorded_for(key, plan, digest)
                if recorded is None:
                    raise IdempotencyKeyInFlight(key.key) from None
            except TaskAlreadyExists:
                # Its given ids are taken: by a create with the key that committed since the look-up above (a
                # retry sent while the first was committing), whose answer this is, or by another (refused).
                recorded = await self.recorded_for(key, plan, digest)
                if recorded is None:
                    raise
        docs = new_documents(plan, recorded.ids, recorded.created)
        by_id = {doc["_id"]: doc for doc in docs}
        return [render(doc, by_id) for doc in docs]
