"""Task ids: the counter that hands out server-assigned ids, and inserting a planned create under ids that are
free, whatever other tools write directly meanwhile.

The counter (`counters` document `{_id: "tasks", seq}`) is moved past every id a request gives and every id
found stored in its range (models.task.COUNTER_FOLLOWS_IDS_UP_TO), so server-assigned ids never collide with
them. Ids are reserved outside any transaction: a rolled-back create leaves a gap, never a reused id."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import TypeVar

from bson.int64 import Int64
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure

from models.creation import PlannedTask, Render, new_documents
from models.deadline import is_duplicate_key
from models.errors import IdAllocationFailed, TaskAlreadyExists
from models.storage import Storage
from models.stored_task import TaskDoc
from models.task import COUNTER_FOLLOWS_IDS_UP_TO, SERVER_ID_MAX, now_utc

TASK_COUNTER = "tasks"
"""The `_id` of the id counter in `counters`."""
SERVER_ASSIGNED_ID_RETRIES = 3
_T = TypeVar("_T")
FirstWrite = Callable[..., Awaitable[None]]
"""Written first in a create's transaction: called as `first(session, ids=..., created=...)`, the create's ids in
plan order and its creation time."""


class IdAllocator:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def raise_counter_past(self, ids: Iterable[float]) -> None:
        """Move the counter past those of `ids` that lie where server ids are handed out (see
        COUNTER_FOLLOWS_IDS_UP_TO); ids above sit at the top of the id space and leave it alone."""
        followed = [task_id for task_id in ids if task_id <= COUNTER_FOLLOWS_IDS_UP_TO]
        if followed:
            highest = Int64(math.ceil(max(followed)))
            await self._storage.counters.update_one({"_id": TASK_COUNTER}, {"$max": {"seq": highest}}, upsert=True)

    async def allocate(self, count: int) -> list[int]:
        """`count` fresh ascending ids; IdAllocationFailed once the counter passed SERVER_ID_MAX."""
        if count == 0:
            return []
        counter = await self._storage.counters.find_one_and_update(
            {"_id": TASK_COUNTER},
            {"$inc": {"seq": Int64(count)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None  # an upsert returning the document after the change always has one
        last = int(counter["seq"])
        if last > SERVER_ID_MAX:
            raise IdAllocationFailed(f"server-assigned task ids are used up (they stop at {SERVER_ID_MAX})")
        return list(range(last - count + 1, last + 1))

    async def sync_counter(self) -> None:
        """Move the counter past every stored id in its range, e.g. after ops tooling inserted tasks directly.

        A numeric range only matches numbers, so ids of other types (strings, ObjectIds) that other tools
        stored cannot hide the highest number; a float id counts too, as the unique index compares numerically.
        """
        in_range = {"_id": {"$gte": 1, "$lte": Int64(COUNTER_FOLLOWS_IDS_UP_TO)}}
        highest = await self._storage.tasks.find_one(in_range, {"_id": 1}, sort=[("_id", -1)])
        if highest is not None:
            await self.raise_counter_past([highest["_id"]])

    async def refuse_taken(self, client_ids: Collection[int]) -> None:
        """TaskAlreadyExists naming the ids a request gives that are already stored; else move the counter past
        them. Checked first, so that a create refused for them leaves the counter as it was (one that another
        create's server ids take meanwhile is still refused at its insert)."""
        if not client_ids:
            return
        existing = await self._storage.existing_ids(client_ids)
        if existing:
            raise TaskAlreadyExists(existing)
        await self.raise_counter_past(client_ids)

    async def insert(
        self,
        plan: Sequence[PlannedTask],
        client_ids: Collection[int],
        render: Render[_T],
        first: FirstWrite | None = None,
    ) -> list[_T]:
        """`render` of each stored document of `plan`, in plan order, once all are inserted (all or nothing); the
        tasks without an id given get fresh ones. `first(session, ids, created)`, when given, is written first in
        the same transaction (an idempotency key's record). A server-assigned id that a direct write took meanwhile is
        skipped and the insert tried again, up to SERVER_ASSIGNED_ID_RETRIES times (then IdAllocationFailed); a
        given id taken meanwhile is TaskAlreadyExists."""
        for _ in range(SERVER_ASSIGNED_ID_RETRIES):
            server_ids = iter(await self.allocate(len(plan) - len(client_ids)))
            ids = [item.id if item.id is not None else next(server_ids) for item in plan]
            created = now_utc()
            docs = new_documents(plan, ids, created)
            try:
                written_first = functools.partial(first, ids=ids, created=created) if first is not None else None
                return await self._insert_rendered(docs, render, written_first)
            except OperationFailure as error:
                if not is_duplicate_key(error):
                    raise
                taken = await self._storage.existing_ids(ids)
                if taken & set(client_ids):
                    raise TaskAlreadyExists(taken & set(client_ids)) from None
                await self.sync_counter()  # a direct write took a server-assigned id: skip past it
        raise IdAllocationFailed(
            f"no free task ids after {SERVER_ASSIGNED_ID_RETRIES} tries: something keeps writing ids just past "
            "the id counter; try again, or give ids in the request"
        )

    async def _insert_rendered(
        self, docs: list[TaskDoc], render: Render[_T], first: Callable[[AsyncClientSession], Awaitable[None]] | None
    ) -> list[_T]:
        """`render` of each of `docs`, inserted in one transaction after `first`; the rendering runs while MongoDB
        inserts (Storage.insert_in_order)."""
        by_id = {doc["_id"]: doc for doc in docs}
        rendered: list[_T] = []

        def render_part(part: Sequence[TaskDoc]) -> None:
            rendered.extend([render(doc, by_id) for doc in part])

        async def insert(session: AsyncClientSession) -> None:
            rendered.clear()  # the transaction runs again after a transient error
            if first is not None:
                await first(session)
            await self._storage.insert_in_order(docs, session, render_part)

        def check() -> str:
            read = f"read task {docs[0]['_id']} (the create's first task) to learn whether the create was stored"
            if first is None:
                return read
            return f"send the create again with the same idempotency key (it is stored at most once), or {read}"

        await self._storage.in_transaction(insert, check)
        return rendered
