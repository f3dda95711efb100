"""What archive, restore and purge share (models.lifecycle): a database's tasks, counters and history, the
graph store's transaction, and the reads of whole jobs and their history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from models.history import HISTORY
from models.locks import bump_link_locks
from models.stored_task import Database, TaskDoc
from models.task import TaskCounter, TaskRecord

IN_CHUNK = 10_000
"""Ids per `$in` when reading or deleting the history of many tasks."""

_T = TypeVar("_T")
InTransaction = Callable[[Callable[[AsyncClientSession], Awaitable[_T]]], Awaitable[_T]]


class JobData:
    """A database's tasks, counters and history; `in_transaction` is the graph store's (majority, retried by the
    driver on transient errors and write conflicts)."""

    def __init__(self, database: Database, in_transaction: InTransaction[Any], counter_id: str) -> None:
        self._database = database
        self._tasks = database.get_collection(TaskRecord.Settings.name)
        self._counters = database.get_collection(TaskCounter.Settings.name)
        self._history = database.get_collection(HISTORY)
        self._in_transaction = in_transaction
        self._counter_id = counter_id

    @property
    def database(self) -> Database:
        return self._database

    async def _job_tasks(self, job_id: str | None, session: AsyncClientSession) -> list[TaskDoc]:
        cursor = self._tasks.find({"job-id": job_id}, sort=[("_id", ASCENDING)], session=session)
        return await cursor.to_list(None)

    async def _history_of(self, task_ids: list[Any], session: AsyncClientSession) -> list[TaskDoc]:
        entries: list[TaskDoc] = []
        for start in range(0, len(task_ids), IN_CHUNK):
            chunk = task_ids[start : start + IN_CHUNK]
            cursor = self._history.find({"task": {"$in": chunk}}, session=session)
            entries.extend(await cursor.to_list(None))
        return sorted(entries, key=lambda entry: str(entry["_id"]))


async def bump_job_link_locks(counters: Any, job_ids: Iterable[Any], session: AsyncClientSession) -> None:
    """models.locks' lock documents of these jobs (a stored job id of another type than a string locks those of
    tasks without a job), so that link additions on them conflict with this transaction."""
    await bump_link_locks(counters, {job_id if isinstance(job_id, str) else None for job_id in job_ids}, session)
