"""Adding and removing links between tasks. An addition runs in one transaction that refuses cycles and bumps
the lock documents of every job it read (models.locks explains why that keeps concurrent additions from closing
a cycle).

Which error wins, in the order checked: a self-link (InvalidOperation, before MongoDB is asked), a task that
does not exist (TaskNotFound naming every missing id), then a link that would close a cycle (InvalidOperation
naming the first such link). A link already stored is no error and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Literal

from bson.int64 import Int64
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from models.conditions import EntityTagCondition, require_match
from models.errors import InvalidOperation
from models.layout import TaskDoc, readable_tasks
from models.locks import JobQueues, bump_link_locks
from models.metrics import LINK_QUEUE_WAIT
from models.storage import Storage
from models.task import now_utc
from models.walks import Direction, next_level

Link = tuple[int, int]
"""(source, target): the source's `nexts` holds the target and the target's `previous` holds the source."""


def refuse_self_links(pairs: Iterable[Link]) -> None:
    """InvalidOperation for the first pair that links a task to itself."""
    for source, target in pairs:
        if source == target:
            raise InvalidOperation(f"task {source} cannot be linked to itself")


def link_updates(pairs: Iterable[Link], operator: Literal["$addToSet", "$pull"]) -> list[UpdateOne]:
    """One update per task touched: `$addToSet` ({"$each": ids}) or `$pull` ({"$in": ids}) on both sides."""
    nexts: dict[int, list[Int64]] = {}
    previous: dict[int, list[Int64]] = {}
    for source, target in pairs:
        nexts.setdefault(source, []).append(Int64(target))
        previous.setdefault(target, []).append(Int64(source))
    adding = operator == "$addToSet"
    wrap = "$each" if adding else "$in"
    stamp = {"$set": {"update-timestamp": now_utc()}}

    def update(task_id: int, array: Direction, ids: list[Int64]) -> UpdateOne:
        # A removal touches (and re-stamps) only tasks that really hold one of the links.
        match = {"_id": task_id} if adding else {"_id": task_id, array: {"$in": ids}}
        return UpdateOne(match, {operator: {array: {wrap: ids}}, **stamp})

    return [update(a, "nexts", ids) for a, ids in nexts.items()] + [
        update(b, "previous", ids) for b, ids in previous.items()
    ]


class Links:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._queues = JobQueues()

    async def add(
        self, anchor: int, pairs: list[Link], listing: Direction, if_match: EntityTagCondition | None = None
    ) -> list[TaskDoc]:
        """Add the links; returns the `listing` neighbours of `anchor` after the change, by ascending id.
        Errors as the module says; with `if_match`, PreconditionFailed unless the anchor's ETag satisfies it."""
        refuse_self_links(pairs)
        involved = {task_id for pair in pairs for task_id in pair}

        async def work(session: AsyncClientSession) -> list[TaskDoc]:
            docs = await self._storage.require_ids(involved, session)
            if if_match is not None:
                await require_match(self._storage.tasks, anchor, if_match, session)
            new_pairs = [(a, b) for a, b in dict.fromkeys(pairs) if b not in (docs[a].get("nexts") or [])]
            if new_pairs:
                jobs_read = await self._refuse_cycles(new_pairs, docs, session)
                jobs = jobs_read | {doc.get("job-id") for doc in docs.values()}
                await bump_link_locks(self._storage.counters, jobs, session)
                await self._storage.tasks.bulk_write(
                    link_updates(new_pairs, "$addToSet"), ordered=True, session=session
                )
            # This transaction wrote the anchor's links last (a concurrent change of them would conflict).
            linked = {*(docs[anchor].get(listing) or ()), *(b if a == anchor else a for a, b in new_pairs)}
            return await self._storage.find_sorted({"_id": {"$in": list(linked)}}, session)

        # The endpoints' jobs, read before the transaction, only pick this process's queues: the transaction
        # reads them again and bumps what it read.
        endpoint_jobs = {doc.get("job-id") for doc in (await self._storage.require_ids(involved)).values()}
        waiting = time.monotonic()
        async with self._queues.holding(endpoint_jobs):
            LINK_QUEUE_WAIT.observe(time.monotonic() - waiting)
            return await self._storage.in_transaction(work)

    async def remove(self, pairs: list[Link], anchor: int, if_match: EntityTagCondition | None = None) -> None:
        """Remove the links (those not stored are no error); TaskNotFound naming every id that does not exist;
        with `if_match`, PreconditionFailed unless the anchor's ETag satisfies it."""

        async def work(session: AsyncClientSession) -> None:
            await self._storage.require_ids({task_id for pair in pairs for task_id in pair}, session)
            if if_match is not None:
                await require_match(self._storage.tasks, anchor, if_match, session)
            await self._storage.tasks.bulk_write(link_updates(list(dict.fromkeys(pairs)), "$pull"), session=session)

        await self._storage.in_transaction(work)

    async def _refuse_cycles(
        self, new_pairs: list[Link], endpoints: Mapping[int, TaskDoc], session: AsyncClientSession
    ) -> set[str | None]:
        """Refuse links a->b where a is already reachable from b (the link would close a cycle); returns the
        jobs of every task the searches read.

        The new pairs all share their source or their target, so no cycle can run through two of them:
        checking each against the stored graph is enough.
        """
        jobs_read: set[str | None] = set()
        for source, target in new_pairs:
            if await self._reachable(endpoints[target], endpoints[source], jobs_read, session):
                raise InvalidOperation(f"linking task {source} to next task {target} would close a cycle")
        return jobs_read

    async def _reachable(
        self, start: TaskDoc, goal: TaskDoc, jobs_read: set[str | None], session: AsyncClientSession
    ) -> bool:
        """Whether `goal` is downstream of `start`, searching from both ends and growing the smaller side; the
        endpoints' own links are known already. When it is not, one side has read every task it can reach:
        models.locks relies on that."""
        seen_forward, seen_backward = {start["_id"]}, {goal["_id"]}
        forward = set(next_level([start], "nexts", seen_forward))
        backward = set(next_level([goal], "previous", seen_backward))
        if seen_forward & seen_backward:
            return True
        while forward and backward:
            if len(forward) <= len(backward):
                forward = await self._step(forward, "nexts", seen_forward, jobs_read, session)
                if forward & seen_backward:
                    return True
            else:
                backward = await self._step(backward, "previous", seen_backward, jobs_read, session)
                if backward & seen_forward:
                    return True
        return False

    async def _step(
        self,
        frontier: set[int],
        direction: Direction,
        seen: set[int],
        jobs: set[str | None],
        session: AsyncClientSession,
    ) -> set[int]:
        """One breadth-first level: the not-yet-seen neighbours of `frontier`; marks them seen and notes the
        jobs of the tasks read."""
        cursor = self._storage.tasks.find(
            {"_id": {"$in": list(frontier)}}, {direction: 1, "job-id": 1}, session=session
        )
        docs = readable_tasks(await cursor.to_list(None))
        jobs.update(doc.get("job-id") for doc in docs)
        return set(next_level(docs, direction, seen))
