"""The Job type (counts, summary, pages and whole-job fields), the paging types, and the queries over jobs.

Python names end in Type or Input where models/ has a class of the same name (the schema keeps the plain names).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from graphql_schema.context import Context
from graphql_schema.cost_meter import charge
from graphql_schema.cursors import job_cursor, read_job_cursor, read_task_cursor, task_cursor
from graphql_schema.errors import user_error
from graphql_schema.tasks import (
    RootFilter,
    Selection,
    StatusFilter,
    StatusNotFilter,
    TaskType,
    TypeFilter,
    as_task,
    as_tasks,
)
from models import TaskDoc
from models import jobs as stored
from models.filters import NAME_FILTER_MAX
from models.task import now_utc

NameFilter = Annotated[
    str | None,
    strawberry.argument(
        description=f"names holding this text, ignoring case (plain text, not a pattern; at most {NAME_FILTER_MAX} "
        "characters)"
    ),
]

DepthFilter = Annotated[
    int | None,
    strawberry.argument(
        description="only the tasks at this stage (as Job.levels counts them: 0 for the roots). It reads every "
        "task's links, as Job.levels does, on every page, and is refused as Job.levels is (TRAVERSAL_TOO_LARGE, a "
        "cycle)"
    ),
]

INT32_MAX = 2**31 - 1
"""The largest GraphQL Int (a signed 32-bit integer, GraphQL spec §3.5.1)."""


@strawberry.type(description="A link of the graph: `to` is a next task of `from`.")
class Edge:
    from_: strawberry.ID = strawberry.field(name="from")
    to: strawberry.ID


@strawberry.type
class StatusCount:
    status: str | None
    count: int


@strawberry.type(
    name="JobSummary", description="A job's progress, from an aggregation over its tasks (any size of job)."
)
class JobSummaryType:
    first_start: datetime | None = strawberry.field(description="The earliest start-time of its tasks.")
    last_finish: datetime | None = strawberry.field(description="The latest finish-time of its tasks.")
    last_update: datetime | None = strawberry.field(description="The latest update-timestamp of its tasks.")
    duration_ms: int | None = strawberry.field(
        description="lastFinish (or now, without one) minus firstStart; null without a start, or past 2^31-1 ms "
        "(about 24.8 days, GraphQL's Int): use firstStart and lastFinish then."
    )
    done_count: int = strawberry.field(description="Tasks whose status is done (TRACKING_DONE_STATUSES).")
    progress: float = strawberry.field(description="doneCount / taskCount, from 0 to 1.")


def as_summary(summary: stored.JobSummary | None) -> JobSummaryType:
    summary = summary or stored.JobSummary()
    duration = stored.job_duration_ms(summary, now_utc())
    return JobSummaryType(
        first_start=summary.first_start,
        last_finish=summary.last_finish,
        last_update=summary.last_update,
        duration_ms=duration if duration is not None and abs(duration) <= INT32_MAX else None,
        done_count=summary.done_count,
        progress=stored.job_progress(summary),
    )


@strawberry.type(description="Where a page ended (Relay-style).")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class TaskEdge:
    cursor: str
    node: TaskType


@strawberry.type(description="A page of tasks by ascending id.")
class TaskConnection:
    edges: list[TaskEdge]
    page_info: PageInfo


def page_size(first: int, info: Info[Context, None]) -> int:
    """`first` within 1 and TRACKING_GRAPHQL_MAX_PAGE."""
    if first < 1:
        raise user_error("first: must be at least 1")
    if first > info.context.max_page:
        raise user_error(f"first: at most {info.context.max_page} (TRACKING_GRAPHQL_MAX_PAGE)")
    return first


@strawberry.type(
    description="The tasks sharing a job-id. Counts, summary and taskPage work for jobs of any size; tasks, roots "
    "and edges list the whole job and refuse one over TRACKING_GRAPHQL_MAX_TRAVERSAL."
)
class Job:
    id: str

    async def _stored_summary(self, info: Info[Context, None]) -> stored.JobSummary:
        return await info.context.job_summaries.load(self.id) or stored.JobSummary()

    @strawberry.field(description="The job's tasks by ascending id; root true/false keeps only (non-)root tasks.")
    async def tasks(
        self,
        info: Info[Context, None],
        root_: RootFilter = None,
        status: StatusFilter = None,
        status_not: StatusNotFilter = None,
        type_: TypeFilter = None,
    ) -> list[TaskType]:
        selection = Selection(status, status_not, type_)
        docs = await self._every_task(info)
        return as_tasks([doc for doc in docs if (root_ is None or doc.get("root") is root_) and selection.keeps(doc)])

    async def _every_task(self, info: Info[Context, None]) -> list[TaskDoc]:
        docs = await info.context.job_tasks.load(self.id)
        info.context.remember(docs)
        return docs

    @strawberry.field(
        description="The job's root tasks: those stored with root true, and for a caller limited to some jobs also "
        "the tasks none of whose previous tasks it may see."
    )
    async def roots(self, info: Info[Context, None]) -> list[TaskType]:
        return as_tasks(await info.context.store.job_roots(await self._every_task(info)))

    @strawberry.field(description="Every link between two tasks of the job.")
    async def edges(self, info: Info[Context, None]) -> list[Edge]:
        docs = await self._every_task(info)
        charge(info._raw_info.field_nodes[0], [sum(len(doc.get("nexts") or ()) for doc in docs)])  # metered
        members = {doc["_id"] for doc in docs}
        return [
            Edge(from_=strawberry.ID(str(doc["_id"])), to=strawberry.ID(str(next_id)))
            for doc in docs
            for next_id in doc.get("nexts") or ()
            if next_id in members
        ]

    @strawberry.field(description="How many of the job's tasks have each status (null: no status), null first.")
    async def status_counts(self, info: Info[Context, None]) -> list[StatusCount]:
        counts = (await self._stored_summary(info)).status_counts
        charge(info._raw_info.field_nodes[0], [len(counts)])  # a status is any string: metered
        return ordered_counts(counts)

    @strawberry.field(description="How many tasks the job has.")
    async def task_count(self, info: Info[Context, None]) -> int:
        return (await self._stored_summary(info)).task_count

    @strawberry.field(description="Times and progress of the job.")
    async def summary(self, info: Info[Context, None]) -> JobSummaryType:
        return as_summary(await info.context.job_summaries.load(self.id))

    @strawberry.field(description="A page of the job's tasks by ascending id, for jobs of any size.")
    async def task_page(
        self,
        info: Info[Context, None],
        first: int = 100,
        after: str | None = None,
        status: StatusFilter = None,
        status_not: StatusNotFilter = None,
        type_: TypeFilter = None,
        name: NameFilter = None,
        depth: DepthFilter = None,
    ) -> TaskConnection:
        after_id = read_task_cursor(after) if after is not None else None
        store = info.context.store
        size = page_size(first, info)
        if depth is not None and depth < 0:
            raise user_error("depth: must be 0 or more")
        stage = await info.context.stage(self.id, depth)
        docs, more = await store.task_page(self.id, size, after_id, status, status_not, type_, name, stage)
        info.context.remember(docs)
        edges = [TaskEdge(cursor=task_cursor(doc["_id"]), node=as_task(doc)) for doc in docs]
        return TaskConnection(edges=edges, page_info=PageInfo(has_next_page=more, end_cursor=_last_cursor(edges)))

    @strawberry.field(
        description="The job's tasks by stage (depth from its roots: one more than the deepest previous task in "
        "the job), shallowest first, with counts per status: an overview of a job of any size, computed from the "
        "links and statuses only. TRAVERSAL_TOO_LARGE over 10 x TRACKING_GRAPHQL_MAX_TRAVERSAL tasks; an error "
        "naming a task on the cycle if the links hold one; null then, the job's other fields still answered."
    )
    async def levels(self, info: Info[Context, None]) -> list[JobLevelType] | None:
        found = info.context.store.job_levels(await info.context.job_stages.load(self.id))
        return [
            JobLevelType(
                depth=level.depth,
                count=level.count,
                status_counts=ordered_counts(level.status_counts),
                blocked_count=level.blocked_count,
            )
            for level in found
        ]

    @strawberry.field(
        description="The chain of linked tasks of the job, from one with no previous task in the job to one with "
        "no next in it, with the largest total duration (finish - start; now - start while running; 0 without a "
        "start). Among equal chains, lower ids win. An error naming a task on the cycle if the links hold one (or "
        "TRAVERSAL_TOO_LARGE); null then, the job's other fields (tasks, edges) still answered."
    )
    async def critical_path(self, info: Info[Context, None]) -> list[TaskType] | None:
        return as_tasks(await info.context.store.critical_path(self.id, info.context.max_traversal))


def _last_cursor(edges: list[TaskEdge] | list[JobEdge]) -> str | None:
    return edges[-1].cursor if edges else None


def ordered_counts(counts: dict[str | None, int]) -> list[StatusCount]:
    """Status counts, "no status" first, then by status."""
    ordered = sorted(counts.items(), key=lambda item: (item[0] is not None, item[0] or ""))
    return [StatusCount(status=status, count=count) for status, count in ordered]


@strawberry.type(name="JobLevel", description="The tasks of one stage of a job.")
class JobLevelType:
    depth: int = strawberry.field(description="0 for the job's roots, else one more than its deepest previous task.")
    count: int
    status_counts: list[StatusCount]
    blocked_count: int = strawberry.field(
        description="How many of its tasks are blocked: waiting on a previous task of the job that is not done "
        "(their blockedBy is not empty, counting links within the job) while not done themselves nor under way "
        "(RUNNING, FAILED or ERROR)."
    )


@strawberry.type
class JobEdge:
    cursor: str
    node: Job


@strawberry.type(description="A page of jobs, newest activity first, then by id.")
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo


@strawberry.input(name="JobFilter", description="Which jobs to list; every condition given must hold.")
class JobFilterInput:
    id_prefix: str | None = strawberry.field(default=None, description="job ids starting with this")
    status: list[str] | None = strawberry.field(default=None, description="jobs having a task in any of these")
    updated_after: datetime | None = strawberry.field(default=None, description="latest update after this")
    updated_before: datetime | None = strawberry.field(default=None, description="latest update before this")


def job_connection(page: stored.JobsPage) -> JobConnection:
    edges = [
        JobEdge(
            cursor=job_cursor(stored.JobPosition(job.last_update, job.job_id), page.snapshot), node=Job(id=job.job_id)
        )
        for job in page.jobs
    ]
    return JobConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next, end_cursor=_last_cursor(edges)))


@strawberry.type
class JobQueries:
    """The `Query` fields over jobs."""

    @strawberry.field(description="The job with this id, or null when no task has this job-id.")
    async def job(self, info: Info[Context, None], id: str) -> Job | None:
        return Job(id=id) if await info.context.store.job_exists(id) else None

    @strawberry.field(
        description="Jobs, newest activity first (the latest update-timestamp among their tasks), then by id. "
        "Pages read the data as of the first page, so paging is stable while jobs change."
    )
    async def jobs(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: JobFilterInput | None = None,
    ) -> JobConnection:
        position, snapshot = read_job_cursor(after) if after is not None else (None, None)
        wanted = filter or JobFilterInput()
        job_filter = stored.JobFilter(wanted.id_prefix, wanted.status, wanted.updated_after, wanted.updated_before)
        page = await info.context.store.list_jobs(page_size(first, info), position, job_filter, snapshot)
        return job_connection(page)

    @strawberry.field(
        description="The statuses that mean a task is done (TRACKING_DONE_STATUSES), sorted: what doneCount, "
        "progress and blockedBy count as done, and what a dashboard should colour as done."
    )
    def done_statuses(self, info: Info[Context, None]) -> list[str]:
        return sorted(info.context.store.done_statuses)
