"""The reads of whole jobs (JobReads): listing them (models.jobs.listing), their summaries
(models.jobs.summaries), their tasks in full, by projection or by page, their stages (models.jobs.levels) and
their critical path. A read of every task of a job is refused over a bound."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from bson.timestamp import Timestamp
from pymongo import ASCENDING
from pymongo.errors import OperationFailure

from models.errors import InvalidOperation, TraversalTooLarge
from models.graph import critical_path
from models.jobs.levels import (
    LEVEL_FIELDS,
    LEVELS_BOUND_FACTOR,
    LEVELS_CHUNK,
    TOO_LARGE_CODES,
    JobLinks,
    JobStages,
    links_pipeline,
    unpack_links,
)
from models.jobs.listing import (
    JOBS_INDEX,
    JobFilter,
    JobPosition,
    JobsPage,
    is_snapshot_too_old,
    jobs_page,
    jobs_pipeline,
)
from models.jobs.sizes import count_job_tasks
from models.jobs.summaries import JobSummary, ProjectedJob, summaries, summaries_pipeline
from models.scopes import scope_ranges
from models.storage import LIST_BATCH_SIZE, Storage
from models.stored_task import TaskDoc, readable_projected_tasks, readable_tasks
from models.task import now_utc

log = logging.getLogger(__name__)
_INVALID_OPTIONS = 72
"""MongoDB's answer to a snapshot read at a cluster time later than its own: no time a listing read at."""


class JobReads:
    """The reads of whole jobs: listing them, their summaries, their tasks in full or by page, their critical
    path. A read of every task of a job is refused over a bound, counted on the index first."""

    def __init__(self, storage: Storage, done_statuses: Collection[str]) -> None:
        self._storage = storage
        self._done_statuses = done_statuses

    async def list_jobs(
        self, first: int, after: JobPosition | None, job_filter: JobFilter, snapshot: tuple[int, int] | None
    ) -> JobsPage:
        """Up to `first` jobs after `after`, newest activity first, read at `snapshot` when MongoDB still holds
        it, else at a new one (see the module's docstring)."""
        try:
            return await self._jobs_page(first, after, job_filter, snapshot)
        except OperationFailure as error:
            if snapshot is not None and error.code == _INVALID_OPTIONS:
                raise InvalidOperation(
                    "the cursor's snapshot is later than MongoDB's cluster time: not a cursor this listing gave"
                ) from None
            if snapshot is None or not is_snapshot_too_old(error.code):
                raise
            log.info("job listing snapshot %s is older than MongoDB keeps; going on over current data", snapshot)
            return await self._jobs_page(first, after, job_filter, None)

    async def _jobs_page(
        self, first: int, after: JobPosition | None, job_filter: JobFilter, snapshot: tuple[int, int] | None
    ) -> JobsPage:
        read_concern: dict[str, Any] = {"level": "snapshot"}
        if snapshot is not None:
            read_concern["atClusterTime"] = Timestamp(*snapshot)
        tasks = self._storage.tasks.name
        job_ids = None
        if job_filter.statuses:
            having = self._storage.within({"status": {"$in": job_filter.statuses}})
            distinct = {"distinct": tasks, "key": "job-id", "query": having}
            reply = await self._storage.command({**distinct, "readConcern": read_concern})
            # Exactly str: PyMongo's JavaScript (Code) is a str, and it matches only itself, no job.
            job_ids = [job_id for job_id in reply["values"] if type(job_id) is str]
            read_concern = {"level": "snapshot", "atClusterTime": reply["atClusterTime"]}
        # The ranges alone keep the plan that reads one index key per job: the listing groups by the stored
        # job-id itself, so a tool's array is a group of its own, which the pipeline leaves out (models.scopes).
        pipeline = jobs_pipeline(first, after, job_filter, job_ids, scope_ranges(self._storage.scope))
        command = {
            "aggregate": tasks,
            "pipeline": pipeline,
            "cursor": {},
            "readConcern": read_concern,
            "hint": JOBS_INDEX,  # the plan that reads one key per job (see the module's docstring)
        }
        cursor = (await self._storage.command(command))["cursor"]
        at = cursor.get("atClusterTime") or read_concern.get("atClusterTime")
        return jobs_page(cursor["firstBatch"], first, (at.time, at.inc) if at is not None else None)

    async def summaries(self, job_ids: Collection[str]) -> dict[str, JobSummary]:
        """Counts, status counts and times of each of these jobs that has tasks, by job id, in one aggregation."""
        pipeline = summaries_pipeline(job_ids, self._storage.scope_clause)
        rows = await (await self._storage.tasks.aggregate(pipeline)).to_list(None)
        return summaries(rows, job_ids, self._done_statuses)

    async def task_counts(self, job_ids: Collection[str], at_most: int) -> dict[str, int]:
        """Each job's number of tasks, counted on the index up to `at_most` (models.jobs.sizes)."""
        return await count_job_tasks(self._storage, job_ids, at_most)

    async def exists(self, job_id: str) -> bool:
        """Whether any task belongs to the job."""
        return await self._storage.tasks.find_one(self._storage.of_job(job_id), {"_id": 1}) is not None

    async def tasks(self, job_id: str, bound: int) -> list[TaskDoc]:
        """Every task of the job by ascending id; TraversalTooLarge over `bound`."""
        await self._refuse_job_over(job_id, bound, "list every task of it")
        return await self._storage.find_sorted({"job-id": job_id})  # narrowed to the scope by find_sorted

    async def task_fields(self, job_id: str, fields: Collection[str] | None, bound: int) -> ProjectedJob:
        """Every task of the job by ascending id with only `fields` (stored names; None: all) besides `_id`, as
        one find of at most `bound` + 1 documents (no count first: a job within the bound, the usual case, costs
        one round trip); TraversalTooLarge over `bound`, as `tasks`."""
        projection = {"_id": 1, **dict.fromkeys(fields, 1)} if fields is not None else None
        query = self._storage.of_job(job_id)
        cursor = self._storage.tasks.find(query, projection, limit=bound + 1, batch_size=LIST_BATCH_SIZE)
        docs = await cursor.sort("_id", ASCENDING).to_list(None)
        if len(docs) > bound:
            await self._refuse_job_over(job_id, bound, "list every task of it", at_least=len(docs))
        readable = readable_projected_tasks(docs, projection) if projection is not None else readable_tasks(docs)
        return ProjectedJob(readable, len(docs))

    async def _refuse_job_over(self, job_id: str, bound: int, what: str, at_least: int = 0) -> int:
        """How many documents carry the job id; TraversalTooLarge over `bound` (or when `at_least` documents
        were already seen, say before a concurrent delete)."""
        count = max(await self._storage.tasks.count_documents(self._storage.of_job(job_id)), at_least)
        if count > bound:
            raise TraversalTooLarge(
                f"traversal bound exceeded: job {job_id} has {count} tasks, more than {bound} "
                f"(TRACKING_GRAPHQL_MAX_TRAVERSAL), too many to {what}: page through them with Job.taskPage"
            )
        return count

    async def task_page(
        self, job_id: str, first: int, after_id: int | None, task_query: dict[str, Any], stage: Sequence[int] | None
    ) -> tuple[list[TaskDoc], bool]:
        """Up to `first` tasks of the job matching `task_query` (and among the ids of `stage`, a stage's tasks as
        `stages` finds them, when given) after `after_id`, by id, and whether more follow. Ids never change, so
        paging by id yields each task once however the job changes meanwhile."""
        query: dict[str, Any] = {"job-id": job_id, **task_query}  # narrowed to the scope below
        ids: dict[str, Any] = {}
        if stage is not None:
            ids["$in"] = list(stage)
        if after_id is not None:
            ids["$gt"] = after_id
        if ids:
            query["_id"] = ids
        cursor = self._storage.tasks.find(
            self._storage.within(query), sort=[("_id", ASCENDING)], limit=first + 1, batch_size=first + 1
        )
        docs = readable_tasks(await cursor.to_list(None))
        return docs[:first], len(docs) > first

    async def stages(self, job_id: str, bound: int) -> JobStages:
        """The job's tasks by stage (JobStages), reading only their links and status; TraversalTooLarge over
        `bound` tasks, GraphCycle when the stored links hold a cycle."""
        return JobStages.of(await self._links_and_statuses(job_id, bound))

    async def _links_and_statuses(self, job_id: str, bound: int) -> JobLinks:
        """Every task's id, status and next tasks; TraversalTooLarge over `bound` tasks. Read as one aggregation
        that packs LEVELS_CHUNK tasks into each answer document (`links_pipeline`): decoding a few hundred
        arrays instead of a document per task halves the time and the memory of a 100,000-task job
        (bench/README.md). A chunk MongoDB refuses to build (over 16 MiB: tasks with very many links) falls
        back to one projected document per task."""
        count = await self._storage.tasks.count_documents(self._storage.of_job(job_id))
        if count > bound:
            raise TraversalTooLarge(
                f"traversal bound exceeded: job {job_id} has {count} tasks, more than {bound} "
                f"({LEVELS_BOUND_FACTOR} x TRACKING_GRAPHQL_MAX_TRAVERSAL), too many to count by stage: "
                "use Job.statusCounts"
            )
        try:
            pipeline = links_pipeline(self._storage.of_job(job_id))
            cursor = await self._storage.tasks.aggregate(pipeline, batchSize=LIST_BATCH_SIZE)
            return unpack_links(await cursor.to_list(None))
        except OperationFailure as error:
            if error.code not in TOO_LARGE_CODES:
                raise
            log.info("job %s: links too large to pack by %d tasks (%s); reading them task by task", job_id,
                     LEVELS_CHUNK, error)  # fmt: skip
        projection = dict.fromkeys(LEVEL_FIELDS, 1)
        documents = self._storage.tasks.find(self._storage.of_job(job_id), projection, batch_size=100)
        links = JobLinks()
        async for doc in documents:  # one batch of documents held at a time
            task = readable_projected_tasks([doc], projection)
            if task:
                links.add(task[0]["_id"], task[0].get("status"), task[0].get("nexts") or [])
        return links

    async def critical_path(self, job_id: str, bound: int) -> list[TaskDoc]:
        """The tasks of the job's longest chain by duration (models.graph.critical_path), first to last;
        TraversalTooLarge over `bound` tasks, GraphCycle when the stored links hold a cycle."""
        await self._refuse_job_over(job_id, bound, "find its critical path")
        projection = {"nexts": 1, "previous": 1, "start-time": 1, "finish-time": 1}
        cursor = self._storage.tasks.find(self._storage.of_job(job_id), projection, batch_size=LIST_BATCH_SIZE)
        timing = {doc["_id"]: doc for doc in readable_tasks(await cursor.to_list(None))}
        path = critical_path(timing, now_utc())
        found = await self._storage.find_by_ids(path)
        return [found[task_id] for task_id in path if task_id in found]
