"""The collections every part of the graph store shares, and the few ways they are read and written in common:
a majority transaction, tasks by id, tasks sorted by id. No rule of the graph lives here."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar, cast

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from models.actors import ACTING, CHANGED_BY, changed_by
from models.defaults import COMMIT_OUTCOME_WAIT_MS
from models.documents import TaskCounter, TaskRecord
from models.errors import TaskNotFound
from models.scopes import JobScope, scope_filter, within
from models.stored_task import (
    Database,
    MongoClient,
    RawDocument,
    TaskDoc,
    as_task_id,
    integral_number,
    readable_projected_tasks,
    readable_tasks,
)
from models.transactions import run_transaction

LIST_BATCH_SIZE = 100_000
"""Lists come back in as few round trips as 16 MiB batches allow."""
ALONGSIDE_SLICE = 250
"""Documents handed to an insert's `alongside` work between two turns of the event loop (about a millisecond of
work: the insert is sent first, and other requests are served in between)."""
_T = TypeVar("_T")
log = logging.getLogger(__name__)


def _read_back() -> str:
    return "read what it changed to learn whether it was stored"


class Storage:
    """The client, the database and its `tasks` and `counters` collections."""

    def __init__(
        self, client: MongoClient, database: Database, commit_wait_s: float = COMMIT_OUTCOME_WAIT_MS / 1000
    ) -> None:
        self.client = client
        self.commit_wait_s = commit_wait_s
        self.database = database
        self.tasks = database.get_collection(TaskRecord.Settings.name)
        self.counters = database.get_collection(TaskCounter.Settings.name)
        self.scope: JobScope = None
        """The job-id prefixes this storage's reads and checks are narrowed to (models.scopes); None: none."""
        self.scope_clause: dict[str, Any] | None = None

    def scoped(self, scope: JobScope) -> Storage:
        """This storage with its task reads, and the existence checks of its writes, narrowed to `scope`."""
        narrowed = copy.copy(self)
        narrowed.scope, narrowed.scope_clause = scope, scope_filter(scope)
        return narrowed

    def stamp(self, *, deleting: bool = False) -> dict[str, Any]:
        """What a write sets beside its change: the `changed-by` of the caller it is made for (models.actors:
        the context's ACTING), new for every write; nothing for a tool's (the command line's) write."""
        actor = ACTING.get()
        return {CHANGED_BY: changed_by(actor, deleting=deleting)} if actor is not None else {}

    def within(self, query: dict[str, Any]) -> dict[str, Any]:
        """`query` narrowed to this storage's scope."""
        return within(query, self.scope_clause)

    def of_job(self, job_id: str) -> dict[str, Any]:
        """The query of the job's tasks this storage sees: narrowed to its scope even for a job id in it, since
        `{"job-id": job_id}` also matches a tool's array holding the id, which no scope holds (models.scopes)."""
        return self.within({"job-id": job_id})

    async def in_transaction(
        self, work: Callable[[AsyncClientSession], Awaitable[_T]], check: Callable[[], str] = _read_back
    ) -> _T:
        """What `work` returns, run in one majority transaction on the primary and committed, its outcome
        learned (models.transactions): a try that fails on a transient error (a write conflict) runs again; one
        that fails otherwise, or that the deadline or a cancellation cuts before the commit, is aborted with
        nothing stored. CommitOutcomeUnknown, naming `check()`, when the commit was sent and its outcome could
        not be learned within the commit's own wait."""
        return await run_transaction(self.tasks, work, self.commit_wait_s, check)

    async def insert_in_order(
        self,
        docs: Sequence[TaskDoc],
        session: AsyncClientSession,
        alongside: Callable[[Sequence[TaskDoc]], None],
    ) -> None:
        """Insert `docs` in order within the session's transaction (ordered: the first failure stops it, and the
        transaction's abort undoes the rest), and call `alongside` on them, ALONGSIDE_SLICE documents at a time in
        order, while MongoDB inserts them: the caller's own work on the documents (an answer to encode) then costs
        no time of its own, the gateway working on one core while mongod works on the other. Raises what
        `insert_many` raises (BulkWriteError, DocumentTooLarge), and what `alongside` raises.

        Why not more: inserting in chunks of 1,000, each encoded to BSON while MongoDB inserted the one before,
        hid the encoding too, but the extra insert commands cost mongod more than that saved (bench/README.md,
        "Bulk create, second pass")."""
        if ACTING.get() is not None:
            for doc in docs:  # `changed-by` is the gateway's own field, no API field: not TaskDoc's (models.actors)
                cast(RawDocument, doc).update(self.stamp())
        stored = cast(Sequence[RawDocument], docs)  # the driver takes plain dicts, as a TaskDoc is at run time
        sending = asyncio.ensure_future(self.tasks.insert_many(stored, ordered=True, session=session))
        try:
            for first in range(0, len(docs), ALONGSIDE_SLICE):
                await asyncio.sleep(0)  # the insert is encoded and sent first, then its reply awaited
                alongside(docs[first : first + ALONGSIDE_SLICE])
            await sending
        finally:
            # `alongside` failed or the deadline passed: the insert is stopped and waited for, so that the
            # transaction's abort does not use the session beside it, and its error taken (else asyncio logs "Task
            # exception was never retrieved"); the error raised is the one that came first.
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

    async def find_sorted(
        self,
        query: dict[str, Any],
        session: AsyncClientSession | None = None,
        projection: dict[str, Any] | None = None,
    ) -> list[TaskDoc]:
        """The tasks matching `query`, by ascending id, as readers see them (models.stored_task.readable_tasks); only
        the fields of `projection` (and `_id`) when given."""
        cursor = self.tasks.find(self.within(query), projection, session=session, batch_size=LIST_BATCH_SIZE)
        docs = await cursor.sort("_id", ASCENDING).to_list(None)
        return readable_tasks(docs) if projection is None else readable_projected_tasks(docs, projection)

    async def find_by_ids(self, ids: Collection[int]) -> dict[int, TaskDoc]:
        """The tasks that exist among `ids`, by id (unknown ids are simply absent)."""
        if not ids:
            return {}
        # The whole answer in the first batch, one more than can match so that the server closes the cursor:
        # one round trip, where the default (101 documents, then getMore) costs two or more.
        cursor = self.tasks.find(self.within({"_id": {"$in": list(ids)}}), batch_size=len(ids) + 1)
        return {doc["_id"]: doc for doc in readable_tasks(await cursor.to_list(None))}

    async def require_ids(
        self, ids: Collection[int], session: AsyncClientSession | None = None, whole: bool = False
    ) -> dict[int, TaskDoc]:
        """Link arrays and jobs (`nexts`, `previous`, `job-id`) of the given tasks, or with `whole` every field,
        by id; TaskNotFound naming every id that does not exist (or lies outside the scope)."""
        projection = None if whole else {"nexts": 1, "previous": 1, "job-id": 1}
        cursor = self.tasks.find(self.within({"_id": {"$in": list(ids)}}), projection, session=session)
        found = {doc["_id"]: doc for doc in readable_tasks(await cursor.to_list(None))}
        missing = set(ids) - found.keys()
        if missing:
            raise TaskNotFound(missing)
        return found

    async def existing_ids(self, ids: Collection[int]) -> set[int]:
        """Which of `ids` are taken, in any scope (ids are one space). MongoDB compares numbers across types, so
        a tool's `_id` of Decimal128("7") or 7.0 takes id 7 too (the unique `_id` index says so)."""
        stored = [doc["_id"] async for doc in self.tasks.find({"_id": {"$in": list(ids)}}, {"_id": 1})]
        return {number for number in map(integral_number, stored) if number is not None and number in ids}

    async def seen_ids(self, ids: Collection[int]) -> set[int]:
        """Which of `ids` are tasks this storage's scope sees (their ids only are read)."""
        if not ids:
            return set()
        stored = [doc["_id"] async for doc in self.tasks.find(self.within({"_id": {"$in": sorted(ids)}}), {"_id": 1})]
        return {task_id for task_id in map(as_task_id, stored) if task_id is not None}

    async def command(self, command: dict[str, Any]) -> dict[str, Any]:
        """The reply of a database command, decoded like every read (`Database.command` defaults to PyMongo's
        plain codec options, under which a stored date beyond year 9999 raises)."""
        return await self.database.command(command, codec_options=self.database.codec_options)
