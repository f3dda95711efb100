"""Purge: whole jobs none of whose tasks has an `update-timestamp` within the retention are removed (a job whose
tasks have no readable `update-timestamp` at all is kept: its age is unknown), and, each on its own, tasks without
a job whose `update-timestamp` is older. In bounded batches, each one transaction that reads the jobs again (a
job that changed meanwhile stays), archives them when asked, removes links into them from other tasks (which are
stamped, as every link change stamps them), their tasks and their history entries, and bumps the link lock
documents (models.locks) of every job it touches: a link addition racing the purge conflicts, is retried, and
finds the task gone. Subscribers see one DELETED event per task, the ordinary change stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from models.archive import JobArchive, PurgedUnit, PurgeReport, archive_name, write_archive
from models.jobs.listing import JOBS_INDEX
from models.lifecycle.job_data import IN_CHUNK, JobData, bump_job_link_locks
from models.stored_task import TaskDoc, readable_date_expression
from models.task import now_utc

DEFAULT_PURGE_BATCH = 1000
"""Most tasks one purge transaction removes, unless one job alone has more (a job is never split)."""


class Purging(JobData):
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
        await bump_job_link_locks(self._counters, touched_jobs, session)
        stamp = {"update-timestamp": now_utc()}
        for array in ("nexts", "previous"):
            await self._tasks.update_many(
                {array: {"$in": ids}, "_id": {"$nin": ids}},
                {"$pull": {array: {"$in": ids}}, "$set": stamp},
                session=session,
            )
        await self._tasks.delete_many({"_id": {"$in": ids}}, session=session)
        for start in range(0, len(ids), IN_CHUNK):
            await self._history.delete_many({"task": {"$in": ids[start : start + IN_CHUNK]}}, session=session)
        return purged


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
