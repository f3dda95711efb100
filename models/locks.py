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

An addition a->b whose search read nothing beyond a and b (b has no next task, or a no previous one, as its
snapshot shows them: the common case of linking a new task) bumps no lock. A cycle through a->b must leave b by
a link b->x (or enter a by x->a) that its snapshot does not hold, so the transaction adding that link writes b
(or a), as this one does: the two conflict on that task itself, and the later one runs again and sees the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from bson.int64 import Int64
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from models.stored_task import Collection

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

    def hold(self) -> QueueHold:
        """An empty hold for one addition, which takes queues as it learns its jobs."""
        return QueueHold(self)

    async def take_if_free(self, job_ids: Iterable[str | None]) -> bool:
        """Take the queues of `job_ids` when no addition holds or awaits any of them (then no await here
        suspends: a fresh lock is taken at once); False, taking none, when one is in use."""
        wanted = set(job_ids)
        if any(job_id in self._queues for job_id in wanted):
            return False
        locks = [self._take(job_id) for job_id in wanted]
        for lock in locks:
            await lock.acquire()
        return True

    async def take_in_turn(self, job_ids: Iterable[str | None]) -> None:
        """Take the queues of `job_ids`, waiting for each in the global order."""
        ordered = sorted(set(job_ids), key=lambda job_id: (job_id is not None, job_id or ""))
        locks = [self._take(job_id) for job_id in ordered]
        taken: list[str | None] = []
        try:
            for job_id, lock in zip(ordered, locks, strict=True):
                await lock.acquire()
                taken.append(job_id)
        except BaseException:
            self.give_back(taken)
            for job_id in ordered[len(taken) :]:
                self._give_back(job_id)
            raise

    def give_back(self, job_ids: Iterable[str | None]) -> None:
        """Release queues taken with `take_if_free` or `take_in_turn`."""
        for job_id in job_ids:
            self._queues[job_id][0].release()
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


class QueuesBusy(Exception):
    """An addition met queues in use after its transaction read its jobs: it gives up that transaction, waits
    its turn for `jobs` and runs again."""

    def __init__(self, jobs: set[str | None]) -> None:
        super().__init__(f"queues of jobs {jobs} in use")
        self.jobs = jobs


class QueueHold:
    """The queues one link addition holds. Its transaction reads the endpoints' jobs first and takes their
    queues at once if they are free (the common case: no read before the transaction); when one is in use it
    raises QueuesBusy, and the caller waits in turn for all of them (`wait_for`) before running again, so
    additions on the same jobs still take turns instead of conflicting in MongoDB."""

    def __init__(self, queues: JobQueues) -> None:
        self._queues = queues
        self.jobs: set[str | None] = set()

    async def cover(self, job_ids: Iterable[str | None]) -> None:
        """Hold the queues of `job_ids` too, taken at once; QueuesBusy (naming every job wanted) when one is
        in use by another addition."""
        missing = set(job_ids) - self.jobs
        if not missing:
            return
        if not await self._queues.take_if_free(missing):
            raise QueuesBusy(self.jobs | missing)
        self.jobs |= missing

    async def wait_for(self, job_ids: set[str | None]) -> None:
        """Give back what is held, then take the queues of `job_ids` in turn (never waiting while holding one
        out of the global order)."""
        self.release()
        await self._queues.take_in_turn(job_ids)
        self.jobs = set(job_ids)

    def release(self) -> None:
        self._queues.give_back(self.jobs)
        self.jobs = set()
