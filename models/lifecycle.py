"""The data lifecycle of whole jobs: archive to a file, restore from it, and purge jobs nobody changed for a while.

The archive file and the reports are models.archive.

Restore puts the documents back byte for byte (`bson.encode` of each equals the archived one), in one
transaction that first refuses ids already in use. Links to tasks outside the archive are kept when those tasks
exist (their side of the link is written back, so the invariant holds) and left out, with a note, when they
do not: the archive of the other end brings them back when it is restored.

Purge removes whole jobs none of whose tasks has an `update-timestamp` within the retention (a job whose tasks
have no readable `update-timestamp` at all is kept: its age is unknown), and, each on its own, tasks without a
job whose `update-timestamp` is older. In bounded batches, each one transaction that reads the jobs again
(a job that changed meanwhile stays), archives them when asked, removes links into them from other tasks
(which are stamped, as every link change stamps them), their tasks and their history entries, and bumps the
link lock documents (models.locks) of every job it touches: a link addition racing the purge conflicts, is
retried, and finds the task gone. Subscribers see one DELETED event per task, the ordinary change stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import bson
from bson.errors import InvalidDocument
from bson.int64 import Int64
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DocumentTooLarge

from models.archive import JobArchive, PurgedUnit, PurgeReport, RestoreReport, archive_name, write_archive
from models.archive_rules import CheckedTasks, checked_tasks
from models.errors import InvalidOperation, TaskAlreadyExists
from models.history import HISTORY
from models.jobs import JOBS_INDEX
from models.layout import Database, TaskDoc, readable_date_expression
from models.locks import bump_link_locks
from models.restore_cycles import refuse_cycles
from models.task import COUNTER_FOLLOWS_IDS_UP_TO, TaskCounter, TaskRecord, now_utc

DEFAULT_PURGE_BATCH = 1000
"""Most tasks one purge transaction removes, unless one job alone has more (a job is never split)."""
MAX_BSON_SIZE = 16 * 1024 * 1024
"""MongoDB's largest document."""
_IN_CHUNK = 10_000  # ids per `$in` when reading history of many tasks

_T = TypeVar("_T")
InTransaction = Callable[[Callable[[AsyncClientSession], Awaitable[_T]]], Awaitable[_T]]


# ---- the operations ----------------------------------------------------------------------------------------------


class Lifecycle:
    """Archive, restore and purge over one database; `in_transaction` is the graph store's (majority, retried
    by the driver on transient errors and write conflicts)."""

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

    # ---- archive ----

    async def archive_job(self, job_id: str) -> JobArchive:
        """The job's tasks and history as of one moment (a snapshot read); InvalidOperation when it has none."""
        async with self._database.client.start_session(snapshot=True) as session:
            tasks = await self._job_tasks(job_id, session)
            if not tasks:
                raise InvalidOperation(f"job {job_id!r} has no tasks: nothing to archive")
            history = await self._history_of([doc["_id"] for doc in tasks], session)
        return JobArchive(job_id, tasks, history)

    async def _job_tasks(self, job_id: str | None, session: AsyncClientSession) -> list[TaskDoc]:
        cursor = self._tasks.find({"job-id": job_id}, sort=[("_id", ASCENDING)], session=session)
        return await cursor.to_list(None)

    async def _history_of(self, task_ids: list[Any], session: AsyncClientSession) -> list[TaskDoc]:
        entries: list[TaskDoc] = []
        for start in range(0, len(task_ids), _IN_CHUNK):
            chunk = task_ids[start : start + _IN_CHUNK]
            cursor = self._history.find({"task": {"$in": chunk}}, session=session)
            entries.extend(await cursor.to_list(None))
        return sorted(entries, key=lambda entry: str(entry["_id"]))

    # ---- restore ----

    async def restore(self, archive: JobArchive) -> RestoreReport:
        """Insert the archived documents as they were, in one transaction; InvalidOperation naming the first
        problem when the archive breaks a graph rule (models.archive_rules, models.restore_cycles),
        TaskAlreadyExists (naming them) when any of its ids is in use; nothing changed then."""
        checked = checked_tasks(archive)
        return await self._in_transaction(lambda session: self._restore_in(archive, checked, session))  # type: ignore[no-any-return]

    async def _restore_in(
        self, archive: JobArchive, checked: CheckedTasks, session: AsyncClientSession
    ) -> RestoreReport:
        ids = [doc["_id"] for doc in checked.tasks]
        taken = [doc["_id"] async for doc in self._tasks.find({"_id": {"$in": ids}}, {"_id": 1}, session=session)]
        if taken:
            raise TaskAlreadyExists(taken)
        restored = set(ids)
        outside = {other for doc in checked.tasks for other in _linked_ids(doc)} - restored
        stored = await self._tasks.find({"_id": {"$in": list(outside)}}, {"job-id": 1}, session=session).to_list(None)
        present = {doc["_id"] for doc in stored}
        tasks, left_out = _without_links_to(checked.tasks, outside - present)
        jobs_read = await refuse_cycles(self._tasks, tasks, present, archive.source, session)
        await _bump_link_locks(
            self._counters,
            {doc.get("job-id") for doc in tasks} | {doc.get("job-id") for doc in stored} | jobs_read,
            session,
        )
        await _insert_restored(self._tasks, tasks, archive.where, session)
        await self._link_back(tasks, present, session)
        await self._raise_counter_past(ids, session)
        entry_ids = [entry["_id"] for entry in archive.history]
        stored_entries = self._history.find({"_id": {"$in": entry_ids}}, {"_id": 1}, session=session)
        existing = {repr(entry["_id"]) async for entry in stored_entries}  # repr: an _id may be a document
        fresh = [(index, entry) for index, entry in enumerate(archive.history) if repr(entry["_id"]) not in existing]
        await _insert_restored(
            self._history, [entry for _, entry in fresh], lambda n: archive.where_entry(fresh[n][0]), session
        )
        return RestoreReport(archive.job_id, len(tasks), len(fresh), len(existing), left_out, checked.completed)

    async def _link_back(self, tasks: list[TaskDoc], present: set[Any], session: AsyncClientSession) -> None:
        """Stored tasks linked from restored ones get their side of each link back (and are stamped, as every
        link change stamps the tasks it changes)."""
        nexts: dict[Any, list[Any]] = {}
        previous: dict[Any, list[Any]] = {}
        for doc in tasks:
            for other in _list(doc.get("nexts")):
                if other in present:
                    previous.setdefault(other, []).append(doc["_id"])
            for other in _list(doc.get("previous")):
                if other in present:
                    nexts.setdefault(other, []).append(doc["_id"])
        stamp = {"update-timestamp": now_utc()}
        updates = [
            UpdateOne({"_id": task_id}, {"$addToSet": {array: {"$each": linked}}, "$set": stamp})
            for array, by_task in (("nexts", nexts), ("previous", previous))
            for task_id, linked in by_task.items()
        ]
        if updates:
            await self._tasks.bulk_write(updates, ordered=True, session=session)

    async def _raise_counter_past(self, ids: Iterable[Any], session: AsyncClientSession) -> None:
        followed = [i for i in ids if isinstance(i, int) and 0 < i <= COUNTER_FOLLOWS_IDS_UP_TO]
        if followed:
            await self._counters.update_one(
                {"_id": self._counter_id}, {"$max": {"seq": Int64(max(followed))}}, upsert=True, session=session
            )

    # ---- purge ----

    async def purge(
        self,
        inactive_days: float,
        *,
        archive_dir: Path | None = None,
        dry_run: bool = False,
        batch: int = DEFAULT_PURGE_BATCH,
        now: datetime | None = None,
        still_leading: Callable[[], Awaitable[bool]] | None = None,
    ) -> PurgeReport:
        """Remove every job none of whose tasks was updated within `inactive_days`, and older tasks without a
        job; see the module's docstring. `still_leading` is asked before each batch (the background purge's
        lease): False stops the purge there."""
        cutoff = (now or now_utc()) - timedelta(days=inactive_days)
        report = PurgeReport(cutoff, dry_run)
        jobs = await self._inactive_jobs(cutoff)
        if dry_run:
            await self._plan_only(jobs, cutoff, batch, report)
            return report
        if archive_dir is not None:
            await asyncio.to_thread(archive_dir.mkdir, parents=True, exist_ok=True)
        queue = list(jobs)
        while queue:
            if still_leading is not None and not await still_leading():
                return report
            taken = await self._purge_jobs(queue, cutoff, batch, archive_dir, report)
            del queue[:taken]
        while True:
            if still_leading is not None and not await still_leading():
                return report
            if not await self._purge_jobless(cutoff, batch, archive_dir, report):
                return report

    async def _inactive_jobs(self, cutoff: datetime) -> list[str]:
        """Jobs whose latest readable update-timestamp is before `cutoff`, oldest first: one index key per job
        (models.jobs)."""
        pipeline: list[dict[str, Any]] = [
            {"$sort": {"job-id": 1, "update-timestamp": -1}},
            {"$group": {"_id": "$job-id", "lastUpdate": {"$first": "$update-timestamp"}}},
            {"$set": {"lastUpdate": readable_date_expression("$lastUpdate")}},
            {"$match": {"_id": {"$type": "string"}, "lastUpdate": {"$lt": cutoff}}},
            {"$sort": {"lastUpdate": 1, "_id": 1}},
        ]
        cursor = await self._tasks.aggregate(pipeline, hint=JOBS_INDEX)
        return [row["_id"] async for row in cursor]

    async def _plan_only(self, jobs: list[str], cutoff: datetime, batch: int, report: PurgeReport) -> None:
        for job_id in jobs:
            tasks = await self._tasks.find({"job-id": job_id}, {"update-timestamp": 1}).to_list(None)
            report.units.append(PurgedUnit(job_id, [doc["_id"] for doc in tasks], 0, _latest_update(tasks)))
        jobless = await self._tasks.find(_jobless_filter(cutoff), {"_id": 1}, sort=[("_id", ASCENDING)]).to_list(None)
        for start in range(0, len(jobless), batch):
            chunk = jobless[start : start + batch]
            report.units.append(PurgedUnit(None, [doc["_id"] for doc in chunk], 0, None))

    async def _purge_jobs(
        self, queue: list[str], cutoff: datetime, batch: int, archive_dir: Path | None, report: PurgeReport
    ) -> int:
        """One transaction: the first jobs of `queue`, as many as fit in `batch` tasks (at least one). Returns
        how many jobs it took."""
        at = now_utc()

        async def work(session: AsyncClientSession) -> tuple[int, list[PurgedUnit], list[str]]:
            units: list[tuple[str | None, list[TaskDoc]]] = []
            kept: list[str] = []
            total = taken = 0
            for job_id in queue:
                if taken and total >= batch:
                    break
                tasks = await self._job_tasks(job_id, session)
                if taken and total + len(tasks) > batch:
                    break
                taken += 1
                latest = _latest_update(tasks)
                if not tasks or latest is None or latest >= cutoff:
                    kept.append(job_id)
                    continue
                units.append((job_id, tasks))
                total += len(tasks)
            purged = await self._remove(units, archive_dir, at, session, written)
            return taken, purged, kept

        written: set[Path] = set()
        taken, purged, kept = await self._in_transaction(work)
        await _discard_unused(written, purged)
        report.units.extend(purged)
        report.kept.extend(kept)
        return int(taken)

    async def _purge_jobless(self, cutoff: datetime, batch: int, archive_dir: Path | None, report: PurgeReport) -> bool:
        """One transaction over up to `batch` tasks without a job older than `cutoff`; False when none is left."""
        at = now_utc()

        async def work(session: AsyncClientSession) -> list[PurgedUnit]:
            cursor = self._tasks.find(_jobless_filter(cutoff), sort=[("_id", ASCENDING)], limit=batch, session=session)
            tasks = await cursor.to_list(None)
            return await self._remove([(None, tasks)] if tasks else [], archive_dir, at, session, written)

        written: set[Path] = set()
        purged: list[PurgedUnit] = await self._in_transaction(work)
        await _discard_unused(written, purged)
        report.units.extend(purged)
        return bool(purged)

    async def _remove(
        self,
        units: list[tuple[str | None, list[TaskDoc]]],
        archive_dir: Path | None,
        at: datetime,
        session: AsyncClientSession,
        written: set[Path],
    ) -> list[PurgedUnit]:
        """Archive (when asked; each file written is added to `written`), unlink from the rest of the graph,
        delete tasks and their history."""
        ids = [doc["_id"] for _, tasks in units for doc in tasks]
        if not ids:
            return []
        history = await self._history_of(ids, session)
        by_task: dict[Any, list[TaskDoc]] = {}
        for entry in history:
            by_task.setdefault(entry.get("task"), []).append(entry)
        purged: list[PurgedUnit] = []
        for job_id, tasks in units:
            entries = [entry for doc in tasks for entry in by_task.get(doc["_id"], [])]
            entries.sort(key=lambda entry: str(entry["_id"]))
            path = None
            if archive_dir is not None:
                path = archive_dir / archive_name(job_id, at)
                archive = JobArchive(job_id, tasks, entries, at)
                await asyncio.to_thread(write_archive, archive, path)
                written.add(path)
            purged.append(PurgedUnit(job_id, [doc["_id"] for doc in tasks], len(entries), _latest_update(tasks), path))
        linking = {"$or": [{"nexts": {"$in": ids}}, {"previous": {"$in": ids}}], "_id": {"$nin": ids}}
        neighbours = await self._tasks.find(linking, {"job-id": 1}, session=session).to_list(None)
        touched_jobs = [job_id for job_id, _ in units] + [doc.get("job-id") for doc in neighbours]
        await _bump_link_locks(self._counters, touched_jobs, session)
        stamp = {"update-timestamp": now_utc()}
        for array in ("nexts", "previous"):
            await self._tasks.update_many(
                {array: {"$in": ids}, "_id": {"$nin": ids}},
                {"$pull": {array: {"$in": ids}}, "$set": stamp},
                session=session,
            )
        await self._tasks.delete_many({"_id": {"$in": ids}}, session=session)
        for start in range(0, len(ids), _IN_CHUNK):
            await self._history.delete_many({"task": {"$in": ids[start : start + _IN_CHUNK]}}, session=session)
        return purged


async def _insert_restored(
    collection: Any, docs: list[TaskDoc], where: Callable[[int], str], session: AsyncClientSession
) -> None:
    """Insert restored documents as they were (past the validator); InvalidOperation naming the first one
    MongoDB refuses (a document past 16 MiB, a field name it does not store) rather than its traceback."""
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=True, session=session, bypass_document_validation=True)
    except BulkWriteError as error:
        (first, *_) = error.details.get("writeErrors") or [{"index": 0, "errmsg": str(error)}]
        raise InvalidOperation(
            f"{where(first['index'])}: MongoDB refused the document: {first.get('errmsg')}; nothing was restored"
        ) from None
    except (DocumentTooLarge, InvalidDocument) as error:  # refused by the driver, before MongoDB: find which
        at = next((n for n, doc in enumerate(docs) if not _storable(doc)), 0)
        raise InvalidOperation(f"{where(at)}: MongoDB refused the document: {error}; nothing was restored") from None


def _storable(doc: TaskDoc) -> bool:
    try:
        return len(bson.encode(doc)) <= MAX_BSON_SIZE
    except InvalidDocument:
        return False


async def _discard_unused(written: set[Path], purged: list[PurgedUnit]) -> None:
    """Archives an aborted try of a transaction wrote for jobs its committed run kept (they changed meanwhile):
    those jobs are still stored, and their file would only mislead."""
    for path in written - {unit.archive for unit in purged}:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _jobless_filter(cutoff: datetime) -> dict[str, Any]:
    """Tasks without a job (missing or null job-id) whose update-timestamp is a date before `cutoff` (a range
    only matches dates: another type, or none, never counts as old)."""
    return {"job-id": None, "update-timestamp": {"$lt": cutoff}}


def _latest_update(tasks: Iterable[TaskDoc]) -> datetime | None:
    dates = [doc.get("update-timestamp") for doc in tasks]
    readable = [value for value in dates if isinstance(value, datetime)]
    return max(readable) if readable else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _linked_ids(doc: TaskDoc) -> Iterator[Any]:
    yield from _list(doc.get("nexts"))
    yield from _list(doc.get("previous"))


def _without_links_to(tasks: list[TaskDoc], gone: set[Any]) -> tuple[list[TaskDoc], list[tuple[int, int]]]:
    """The tasks with links to `gone` ids left out (copies, only of the tasks that had some), and those links."""
    if not gone:
        return tasks, []
    left_out: list[tuple[int, int]] = []
    kept: list[TaskDoc] = []
    for doc in tasks:
        if not any(other in gone for other in _linked_ids(doc)):
            kept.append(doc)
            continue
        copy = dict(doc)
        for array in ("nexts", "previous"):
            if isinstance(doc.get(array), list):
                copy[array] = [other for other in doc[array] if other not in gone]
                pairs = ((doc["_id"], o) if array == "nexts" else (o, doc["_id"]) for o in doc[array] if o in gone)
                left_out.extend(pairs)
        kept.append(copy)
    return kept, left_out


async def _bump_link_locks(counters: Any, job_ids: Iterable[Any], session: AsyncClientSession) -> None:
    """models.locks' lock documents of these jobs (a stored job id of another type than a string locks those of
    tasks without a job), so that link additions on them conflict with this transaction."""
    await bump_link_locks(counters, {job_id if isinstance(job_id, str) else None for job_id in job_ids}, session)
