"""The graph store's queries over whole jobs (GraphStore inherits them): each bounded by the deadline
(models.deadline) and handed to JobReads (models.jobs.reads)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from models.deadline import bounded
from models.filters import name_filter, task_filter
from models.jobs.levels import JobLevel, JobLinks, JobStages, count_levels
from models.jobs.listing import JobFilter, JobPosition, JobsPage
from models.jobs.reads import JobReads
from models.jobs.roots import previous_elsewhere, roots_seen, stored_roots
from models.jobs.summaries import JobSummary, ProjectedJob
from models.scopes import JobScope, in_scope, jobs_in_scope
from models.storage import Storage
from models.stored_task import TaskDoc


class JobQueries:
    """Jobs: listing them, their summaries, tasks, pages, stages and critical path."""

    _jobs: JobReads
    _storage: Storage
    timeout_s: float
    done_statuses: frozenset[str]

    @property
    def scope(self) -> JobScope:
        """The job-id prefixes this store is limited to (models.scopes); None: every job. A job outside them
        answers what an unknown job answers, without a query."""
        return self._storage.scope

    @bounded
    async def list_jobs(
        self,
        first: int,
        after: JobPosition | None = None,
        job_filter: JobFilter | None = None,
        snapshot: tuple[int, int] | None = None,
    ) -> JobsPage:
        """A page of up to `first` jobs, newest activity first, read at `snapshot` (the cluster time of the
        first page) when MongoDB still holds it, else at a new one (models.jobs)."""
        return await self._jobs.list_jobs(first, after, job_filter or JobFilter(), snapshot)

    @bounded
    async def job_summaries(self, job_ids: Collection[str]) -> dict[str, JobSummary]:
        """Counts, status counts and times of each of these jobs that has tasks, by job id."""
        return await self._jobs.summaries(jobs_in_scope(job_ids, self.scope))

    @bounded
    async def job_task_counts(self, job_ids: Collection[str], at_most: int) -> dict[str, int]:
        """Each job's number of tasks, by job id, counted on the index up to `at_most` (models.jobs.sizes): what
        the GraphQL cost budget reads when the traversal bound would refuse an operation."""
        return await self._jobs.task_counts(job_ids, at_most)

    @bounded
    async def job_exists(self, job_id: str) -> bool:
        """Whether any task belongs to the job."""
        return in_scope(job_id, self.scope) and await self._jobs.exists(job_id)

    @bounded
    async def job_tasks(self, job_id: str, bound: int) -> list[TaskDoc]:
        """Every task of the job by ascending id; TraversalTooLarge (counted on the index first) over `bound`."""
        if not in_scope(job_id, self.scope):
            return []
        return await self._jobs.tasks(job_id, bound)

    @bounded
    async def job_task_fields(self, job_id: str, fields: Collection[str] | None, bound: int) -> ProjectedJob:
        """Every task of the job by ascending id with only `fields` (stored names, say "status", "nexts"; None:
        every field) besides `_id`, and how many documents carry the job id: what a compiled GraphQL query reads
        (graphql_schema.compiled); TraversalTooLarge over `bound`."""
        if not in_scope(job_id, self.scope):
            return ProjectedJob([], 0)
        return await self._jobs.task_fields(job_id, fields, bound)

    @bounded
    async def job_roots(self, tasks: Sequence[TaskDoc]) -> list[TaskDoc]:
        """The roots of a job among its `tasks` as this store read them (job_tasks, job_task_fields with `root`
        and `previous`), as the caller sees them (models.jobs.roots): the stored roots, and to a scoped caller
        also the tasks none of whose previous tasks it sees (one read of ids, for previous tasks of other jobs)."""
        if self.scope is None:
            return stored_roots(tasks)
        return roots_seen(tasks, await self._storage.seen_ids(previous_elsewhere(tasks)))

    @bounded
    async def task_page(
        self,
        job_id: str,
        first: int,
        after_id: int | None = None,
        statuses: Collection[str] | None = None,
        statuses_not: Collection[str] | None = None,
        task_type: str | None = None,
        name_contains: str | None = None,
        stage: Sequence[int] | None = None,
    ) -> tuple[list[TaskDoc], bool]:
        """Up to `first` tasks of the job after `after_id`, by id, filtered (models.filters; `stage`: only these
        ids, a stage's as `job_stages` finds them), and whether more follow; InvalidOperation for a name filter
        over NAME_FILTER_MAX characters."""
        query = {**task_filter(statuses, task_type, statuses_not), **name_filter(name_contains)}
        if not in_scope(job_id, self.scope):
            return [], False
        return await self._jobs.task_page(job_id, first, after_id, query, stage)

    @bounded
    async def job_stages(self, job_id: str, bound: int) -> JobStages:
        """The job's tasks by stage (depth from the roots), reading their links and statuses only; read once per
        request, they answer its levels (`job_levels`) and its pages by stage (`JobStages.ids_at`).
        TraversalTooLarge over `bound` tasks, GraphCycle when the stored links hold a cycle."""
        if not in_scope(job_id, self.scope):
            return JobStages.of(JobLinks())
        return await self._jobs.stages(job_id, bound)

    def job_levels(self, stages: JobStages) -> list[JobLevel]:
        """The job's tasks counted by stage and status, shallowest first, with the blocked ones (JobLevel)."""
        return count_levels(stages, self.done_statuses)

    @bounded
    async def critical_path(self, job_id: str, bound: int) -> list[TaskDoc]:
        """The tasks of the job's longest chain by duration, first to last; TraversalTooLarge over `bound` tasks,
        GraphCycle when the stored links hold a cycle."""
        if not in_scope(job_id, self.scope):
            return []
        return await self._jobs.critical_path(job_id, bound)
