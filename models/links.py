"""Adding and removing links between tasks. An addition runs in one transaction that refuses cycles and, when
its cycle search read tasks beyond the link's endpoints, bumps the lock documents of every job it read
(models.locks explains why that keeps concurrent additions from closing a cycle, and why a search that read
nothing beyond the endpoints needs no lock).

Which error wins, in the order checked: a self-link (InvalidOperation, before MongoDB is asked), a task that
does not exist (TaskNotFound naming every missing id), then a link that would close a cycle (InvalidOperation
naming the first such link). A link already stored is no error and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bson.int64 import Int64
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from models.conditions import Preconditions, require_preconditions
from models.errors import InvalidOperation
from models.locks import JobQueues, QueuesBusy, bump_link_locks
from models.metrics import LINK_QUEUE_WAIT
from models.storage import Storage
from models.stored_task import TaskDoc, readable_tasks
from models.task import now_utc
from models.tracing import set_current
from models.walks import Direction, next_level

Link = tuple[int, int]
"""(source, target): the source's `nexts` holds the target and the target's `previous` holds the source."""


def refuse_self_links(pairs: Iterable[Link]) -> None:
    """InvalidOperation for the first pair that links a task to itself."""
    for source, target in pairs:
        if source == target:
            raise InvalidOperation(f"task {source} cannot be linked to itself")


def link_updates(
    pairs: Iterable[Link],
    operator: Literal["$addToSet", "$pull"],
    stamp: datetime | None = None,
    also: dict[str, Any] | None = None,
) -> list[UpdateOne]:
    """One update per task touched: `$addToSet` ({"$each": ids}) or `$pull` ({"$in": ids}) on both sides, each
    setting `update-timestamp` to `stamp` (default: now) and the fields of `also` (the caller's `changed-by`)."""
    nexts: dict[int, list[Int64]] = {}
    previous: dict[int, list[Int64]] = {}
    for source, target in pairs:
        nexts.setdefault(source, []).append(Int64(target))
        previous.setdefault(target, []).append(Int64(source))
    adding = operator == "$addToSet"
    wrap = "$each" if adding else "$in"
    stamped = {"$set": {"update-timestamp": stamp or now_utc(), **(also or {})}}

    def update(task_id: int, array: Direction, ids: list[Int64]) -> UpdateOne:
        # A removal touches (and re-stamps) only tasks that really hold one of the links.
        match = {"_id": task_id} if adding else {"_id": task_id, array: {"$in": ids}}
        return UpdateOne(match, {operator: {array: {wrap: ids}}, **stamped})

    return [update(a, "nexts", ids) for a, ids in nexts.items()] + [
        update(b, "previous", ids) for b, ids in previous.items()
    ]


def with_links(docs: Mapping[int, TaskDoc], new_pairs: Iterable[Link], stamp: datetime) -> dict[int, TaskDoc]:
    """Copies of `docs` as `link_updates(new_pairs, "$addToSet", stamp)` leaves them in MongoDB (every task of
    the pairs is in `docs`)."""
    written = {task_id: doc.copy() for task_id, doc in docs.items()}
    for source, target in new_pairs:
        ends: tuple[tuple[int, Direction, int], ...] = ((source, "nexts", target), (target, "previous", source))
        for task_id, array, other in ends:
            doc = written[task_id]
            ids = doc[array] = list(doc.get(array) or [])
            if other not in ids:
                ids.append(other)
            doc["update-timestamp"] = stamp
    return written


@dataclass
class SearchReads:
    """What the cycle searches of one addition read beyond the endpoints: whether anything (a task, or an id
    that named none), and the jobs of the tasks found."""

    beyond_endpoints: bool = False
    jobs: set[str | None] = field(default_factory=set)


def _read_links(anchor: int) -> str:
    return f"read task {anchor} (its nexts and previous) to learn whether the change was stored"


class Links:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._queues = JobQueues()

    async def add(
        self, anchor: int, pairs: list[Link], listing: Direction, conditions: Preconditions | None = None
    ) -> list[TaskDoc]:
        """Add the links; returns the `listing` neighbours of `anchor` after the change, by ascending id.
        Errors as the module says; with `conditions`, PreconditionFailed unless the anchor's ETags satisfy them.

        Round trips when the jobs' queues are free: one read, the link writes and the commit, as a raw two-update
        transaction makes; and the lock bump when the cycle search read further (models.locks.QueueHold says
        how the queues are taken without a read before the transaction)."""
        refuse_self_links(pairs)
        involved = {task_id for pair in pairs for task_id in pair}
        hold = self._queues.hold()

        async def work(session: AsyncClientSession) -> list[TaskDoc]:
            docs = await self._storage.require_ids(involved, session, whole=True)
            await hold.cover(doc.get("job-id") for doc in docs.values())
            if conditions is not None:
                await require_preconditions(self._storage.tasks, anchor, conditions, session)
            return await self._link(anchor, pairs, listing, docs, session)

        waited = 0.0
        try:
            while True:
                try:
                    return await self._storage.in_transaction(work, lambda: _read_links(anchor))
                except QueuesBusy as busy:
                    waiting = time.monotonic()
                    await hold.wait_for(busy.jobs)
                    waited += time.monotonic() - waiting
        finally:
            hold.release()
            LINK_QUEUE_WAIT.observe(waited)
            set_current("tracking.links.queue_wait_ms", waited * 1000)

    async def _link(
        self, anchor: int, pairs: list[Link], listing: Direction, docs: dict[int, TaskDoc], session: AsyncClientSession
    ) -> list[TaskDoc]:
        """In the transaction, on the endpoints as it read them (`docs`, every field): refuse cycles, bump the
        locks, write the new links; then the anchor's `listing` neighbours."""
        new_pairs = [(a, b) for a, b in dict.fromkeys(pairs) if b not in (docs[a].get("nexts") or [])]
        stamp = now_utc()
        if new_pairs:
            searched = await self._refuse_cycles(new_pairs, docs, session)
            if searched.beyond_endpoints:
                jobs = searched.jobs | {doc.get("job-id") for doc in docs.values()}
                await bump_link_locks(self._storage.counters, jobs, session)
            await self._storage.tasks.bulk_write(
                link_updates(new_pairs, "$addToSet", stamp, self._storage.stamp()), ordered=True, session=session
            )
        # This transaction wrote the anchor's links last (a concurrent change of them would conflict).
        linked = {*(docs[anchor].get(listing) or ()), *(b if a == anchor else a for a, b in new_pairs)}
        if linked <= docs.keys():  # every neighbour was read above: the answer is what was written
            written = with_links(docs, new_pairs, stamp)
            return [written[task_id] for task_id in sorted(linked)]
        return await self._storage.find_sorted({"_id": {"$in": list(linked)}}, session)

    async def remove(self, pairs: list[Link], anchor: int, conditions: Preconditions | None = None) -> None:
        """Remove the links (those not stored are no error); TaskNotFound naming every id that does not exist;
        with `conditions`, PreconditionFailed unless the anchor's ETags satisfy them."""

        async def work(session: AsyncClientSession) -> None:
            await self._storage.require_ids({task_id for pair in pairs for task_id in pair}, session)
            if conditions is not None:
                await require_preconditions(self._storage.tasks, anchor, conditions, session)
            updates = link_updates(list(dict.fromkeys(pairs)), "$pull", also=self._storage.stamp())
            await self._storage.tasks.bulk_write(updates, session=session)

        await self._storage.in_transaction(work, lambda: _read_links(anchor))

    async def _refuse_cycles(
        self, new_pairs: list[Link], endpoints: Mapping[int, TaskDoc], session: AsyncClientSession
    ) -> SearchReads:
        """Refuse links a->b where a is already reachable from b (the link would close a cycle); returns what
        the searches read.

        The new pairs all share their source or their target, so no cycle can run through two of them:
        checking each against the stored graph is enough.
        """
        searched = SearchReads()
        for source, target in new_pairs:
            if await self._reachable(endpoints[target], endpoints[source], searched, session):
                raise InvalidOperation(f"linking task {source} to next task {target} would close a cycle")
        return searched

    async def _reachable(
        self, start: TaskDoc, goal: TaskDoc, searched: SearchReads, session: AsyncClientSession
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
                forward = await self._step(forward, "nexts", seen_forward, searched, session)
                if forward & seen_backward:
                    return True
            else:
                backward = await self._step(backward, "previous", seen_backward, searched, session)
                if backward & seen_forward:
                    return True
        return False

    async def _step(
        self,
        frontier: set[int],
        direction: Direction,
        seen: set[int],
        searched: SearchReads,
        session: AsyncClientSession,
    ) -> set[int]:
        """One breadth-first level: the not-yet-seen neighbours of `frontier`; marks them seen and notes the
        read and the jobs of the tasks read in `searched`."""
        searched.beyond_endpoints = True
        cursor = self._storage.tasks.find(
            {"_id": {"$in": list(frontier)}}, {direction: 1, "job-id": 1}, session=session
        )
        docs = readable_tasks(await cursor.to_list(None))
        searched.jobs.update(doc.get("job-id") for doc in docs)
        return set(next_level(docs, direction, seen))
