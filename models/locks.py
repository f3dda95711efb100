"""Why two link additions that together would close a cycle can never both commit, and how additions on
different jobs still run in parallel, in this process and across gateway processes.

MongoDB transactions run on snapshots and only conflict when they write the same document. Links a->b
(while b~>c is stored) and c->d (while d~>a is stored) write disjoint tasks, each check passes on its own
snapshot, and together they close a->b~>c->d~>a. So every link-adding transaction also bumps one *lock
document* per job: the jobs of both endpoints and of every task its cycle search read. Those two always share
one: the search for a->b either read every task downstream of b (c among them, an endpoint of the other) or
every task upstream of a (d among them), and the same holds the other way round. Sharing a written document,
the later one gets a write conflict, is retried by the driver on a fresh snapshot, sees the other link and
refuses. Additions whose searches stay inside different jobs write different lock documents and commit in
parallel.

A task changing job between two such reads would make them bump different documents, so a change of `job-id`
bumps the lock documents of the old and the new job in the same transaction (models.records).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

from bson.int64 import Int64
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from models.layout import Collection

LINK_LOCK_PREFIX = "task-links"
"""Lock documents live in `counters`: `{_id: "task-links:<job id>", seq}`; tasks without a job share
`{_id: "task-links"}` (the single lock document of earlier versions)."""


def link_lock_id(job_id: str | None) -> str:
    """The `_id` of the lock document of a job (None: of the tasks without a job)."""
    return LINK_LOCK_PREFIX if job_id is None else f"{LINK_LOCK_PREFIX}:{job_id}"


async def bump_link_locks(counters: Collection, job_ids: Iterable[str | None], session: AsyncClientSession) -> None:
    """Write the lock document of each job in the transaction of `session`, in one global order."""
    bumps = [
        UpdateOne({"_id": lock_id}, {"$inc": {"seq": Int64(1)}}, upsert=True)
        for lock_id in sorted({link_lock_id(job_id) for job_id in job_ids})
    ]
    await counters.bulk_write(bumps, ordered=True, session=session)


class JobQueues:
    """In-process queues by job: additions on the same jobs wait here, in turn, instead of meeting in MongoDB
    as write conflicts, aborts and retries with back-off. Queues are taken in one global order, so two
    additions holding some of each other's jobs cannot wait on each other forever."""

    def __init__(self) -> None:
        self._queues: dict[str | None, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def holding(self, job_ids: Iterable[str | None]) -> AsyncIterator[None]:
        ordered = sorted(set(job_ids), key=lambda job_id: (job_id is not None, job_id or ""))
        locks = [self._take(job_id) for job_id in ordered]
        try:
            async with AsyncExitStack() as stack:
                for lock in locks:
                    await stack.enter_async_context(lock)
                yield
        finally:
            for job_id in ordered:
                self._give_back(job_id)

    def _take(self, job_id: str | None) -> asyncio.Lock:
        lock, users = self._queues.get(job_id) or (asyncio.Lock(), 0)
        self._queues[job_id] = (lock, users + 1)
        return lock

    def _give_back(self, job_id: str | None) -> None:
        lock, users = self._queues[job_id]
        if users == 1:
            del self._queues[job_id]
        else:
            self._queues[job_id] = (lock, users - 1)
