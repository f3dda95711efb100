"""Archive: a job's tasks and history as of one moment, to be written to a file (models.archive)."""

from __future__ import annotations

from models.archive import JobArchive
from models.errors import InvalidOperation
from models.lifecycle.job_data import JobData


class Archiving(JobData):
    """The archive part of models.lifecycle.Lifecycle."""

    async def archive_job(self, job_id: str) -> JobArchive:
        """The job's tasks and history as of one moment (a snapshot read); InvalidOperation when it has none."""
        async with self._database.client.start_session(snapshot=True) as session:
            tasks = await self._job_tasks(job_id, session)
            if not tasks:
                raise InvalidOperation(f"job {job_id!r} has no tasks: nothing to archive")
            history = await self._history_of([doc["_id"] for doc in tasks], session)
        return JobArchive(job_id, tasks, history)
