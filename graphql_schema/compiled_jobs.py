"""The compiled path's answers to the root fields (`task`, `job`, `jobs`, `doneStatuses`, `eventCursor`) and to a
job's fields: what each reads (one projected find for a whole job's lists and counts, the summary aggregation,
a page, the levels) and how the answer is shaped, in the order and with the values graphql-core would give."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql_schema.compiled_plan import TASK_FIELDS, TYPENAME, Field, NotCompiled, children
from graphql_schema.compiled_rows import edge_rows, graphql_int, status_count_rows, summary_row
from graphql_schema.compiled_tasks import task_objects
from graphql_schema.context import Context
from graphql_schema.cost_meter import metered
from graphql_schema.cursors import job_cursor, read_job_cursor, read_task_cursor, task_cursor
from graphql_schema.tasks import Selection
from models import JobFilter, JobPosition, JobSummary, TaskDoc, parse_task_id


async def root_value(field: Field, context: Context) -> Any:
    """The answer of one root field of a planned query."""
    if field.name == TYPENAME:
        return "Query"
    if field.name == "doneStatuses":
        return sorted(context.store.done_statuses)
    if field.name == "eventCursor":
        return await context.store.event_cursor(field.arguments.get("jobId"))
    if field.name == "task":
        found = await context.store.get_tasks([parse_task_id(field.arguments["id"], "id")])
        doc = next(iter(found.values()), None)
        return (await task_objects([doc], children(field), context))[0] if doc is not None else None
    if field.name == "jobs":
        return await _jobs(field, context)
    return await _job(field.arguments["id"], children(field), context)


async def _job(job_id: str, fields: tuple[Field, ...], context: Context) -> dict[str, Any] | None:
    """Job's fields from one projected find (tasks, edges, and counts when the find holds the whole job), the
    summary aggregation (summary, or counts without tasks), each read only if selected, then the fields that
    read on their own (critical path, a page of tasks, levels)."""
    store = context.store
    names = {field.name for field in fields}
    counted = bool(names & {"statusCounts", "taskCount"})
    docs: list[TaskDoc] = []
    summary: JobSummary | None = None
    whole_job = [field for field in fields if field.name in ("tasks", "roots")]
    if whole_job or "edges" in names:
        stored = _stored_fields(whole_job)
        if stored is not None:
            stored |= ({"nexts"} if "edges" in names else set()) | ({"status"} if counted else set())
            if "roots" in names and store.scope is not None:  # a scoped caller's roots (models.jobs.roots)
                stored.add("previous")
        job = await store.job_task_fields(job_id, stored, context.max_traversal)
        if not job.stored:
            return None
        docs = job.tasks
        if stored is None:  # whole documents: their walks need no second read of them (graphql_schema.jobs)
            context.remember(docs)
        summary = job.counts() if counted and "summary" not in names else None
    elif not await store.job_exists(job_id):
        return None
    if summary is None and (counted or "summary" in names):
        summary = await context.job_summaries.load(job_id)  # shared by every alias of the job, as resolvers do
    answer: dict[str, Any] = {}
    for field in fields:
        if field.name == "roots":
            answer[field.key] = await task_objects(await store.job_roots(docs), children(field), context)
        elif field.name == "tasks":
            answer[field.key] = await task_objects(_kept(docs, field), children(field), context)
        elif field.name == "edges":
            metered(field, [sum(len(doc.get("nexts") or ()) for doc in docs)])  # a task holds any number of links
            answer[field.key] = edge_rows(docs, field.leaves())
        elif field.name == "criticalPath":
            path = await store.critical_path(job_id, context.max_traversal)
            answer[field.key] = await task_objects(path, children(field), context)
        elif field.name == "taskPage":
            answer[field.key] = await _task_page(job_id, field, context)
        elif field.name == "levels":
            answer[field.key] = await _levels(job_id, children(field), context)
        else:
            answer[field.key] = _job_count(job_id, summary or JobSummary(), field)
    return answer


def _stored_fields(whole_job: list[Field]) -> set[str] | None:
    """The stored fields Job.tasks and Job.roots fields need (their filters' and scalars'; history is read by
    task id), or None when one needs whole documents (a walk or etag)."""
    needed: set[str] = set()
    for field in whole_job:
        arguments = field.arguments
        needed |= {"root"} if field.name == "roots" or arguments.get("root") is not None else set()
        needed |= {"status"} if arguments.get("status") or arguments.get("statusNot") else set()
        needed |= {"type"} if arguments.get("type") is not None else set()
        for leaf in children(field):
            if leaf.name in ("id", TYPENAME, "history", "historyTruncated"):  # history is read by task id
                continue
            if leaf.fields is not None or leaf.name not in TASK_FIELDS:
                return None
            needed.add(TASK_FIELDS[leaf.name])
    return needed


def _kept(docs: list[TaskDoc], field: Field) -> list[TaskDoc]:
    """The tasks of the job Job.tasks keeps with its filters, as graphql_schema.jobs does."""
    arguments = field.arguments
    root = arguments.get("root")
    selection = Selection(arguments.get("status"), arguments.get("statusNot"), arguments.get("type"))
    if root is None and selection == Selection():
        return docs
    return [doc for doc in docs if (root is None or doc.get("root") is root) and selection.keeps(doc)]


def _job_count(job_id: str, summary: JobSummary, field: Field) -> Any:
    """A Job field served from its summary: id, taskCount, statusCounts, summary, __typename."""
    if field.name == "statusCounts":
        metered(field, [len(summary.status_counts)])  # a status is any string
        return status_count_rows(summary.status_counts, field.leaves())
    if field.name == "summary":
        return summary_row(summary, field.leaves())
    if field.name == "taskCount":
        return graphql_int(summary.task_count)
    return job_id if field.name == "id" else "Job"


async def _jobs(field: Field, context: Context) -> dict[str, Any]:
    """Query.jobs: one listing, then the counts of every job of the page in one aggregation (as graphql-core's
    DataLoader batches them)."""
    arguments = field.arguments
    first = _page_size(arguments["first"], context)
    after = arguments.get("after")
    position, snapshot = read_job_cursor(after) if after is not None else (None, None)
    wanted = arguments.get("filter") or {}  # the JobFilter input object as graphql-core coerces it: by GraphQL names
    job_filter = JobFilter(
        wanted.get("idPrefix"), wanted.get("status"), wanted.get("updatedAfter"), wanted.get("updatedBefore")
    )
    page = await context.store.list_jobs(first, position, job_filter, snapshot)
    summaries: dict[str, JobSummary] = {}
    counted = any(leaf.name not in ("id", TYPENAME) for node in _nodes(field) for leaf in children(node))
    if page.jobs and counted:
        summaries = await context.store.job_summaries([job.job_id for job in page.jobs])
    cursors = [job_cursor(JobPosition(job.last_update, job.job_id), page.snapshot) for job in page.jobs]

    def job_edge(edge: Field, index: int) -> dict[str, Any]:
        job_id = page.jobs[index].job_id
        answer: dict[str, Any] = {}
        for child in children(edge):
            if child.name == "node":
                summary = summaries.get(job_id) or JobSummary()
                answer[child.key] = {leaf.key: _job_count(job_id, summary, leaf) for leaf in children(child)}
            else:
                answer[child.key] = cursors[index] if child.name == "cursor" else "JobEdge"
        return answer

    return _connection(field, len(page.jobs), job_edge, page.has_next, cursors[-1] if cursors else None, "Job")


async def _task_page(job_id: str, field: Field, context: Context) -> dict[str, Any]:
    """Job.taskPage: one page read, its tasks then built as any list of tasks."""
    arguments = field.arguments
    after = arguments.get("after")
    after_id = read_task_cursor(after) if after is not None else None
    size = _page_size(arguments["first"], context)
    depth = arguments.get("depth")
    if depth is not None and depth < 0:
        raise NotCompiled("depth below 0: graphql-core gives the error")
    docs, more = await context.store.task_page(
        job_id,
        size,
        after_id,
        arguments.get("status"),
        arguments.get("statusNot"),
        arguments.get("type"),
        arguments.get("name"),
        await context.stage(job_id, depth),
    )
    cursors = [task_cursor(doc["_id"]) for doc in docs]
    nodes = {id(node): await task_objects(docs, children(node), context) for node in _nodes(field)}

    def task_edge(edge: Field, index: int) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for child in children(edge):
            if child.name == "node":
                answer[child.key] = nodes[id(child)][index]
            else:
                answer[child.key] = cursors[index] if child.name == "cursor" else "TaskEdge"
        return answer

    return _connection(field, len(docs), task_edge, more, cursors[-1] if cursors else None, "Task")


def _nodes(connection: Field) -> list[Field]:
    """Every `node` selected in every `edges` of a connection (aliases may select several)."""
    return [
        node
        for edges in children(connection)
        if edges.name == "edges"
        for node in children(edges)
        if node.name == "node"
    ]


def _page_size(first: object, context: Context) -> int:
    """`first` when within 1 and TRACKING_GRAPHQL_MAX_PAGE; graphql-core gives the error otherwise."""
    if type(first) is not int or not 1 <= first <= context.max_page:
        raise NotCompiled("a page size out of bounds")
    return first


def _connection(
    field: Field, count: int, edge: Callable[[Field, int], dict[str, Any]], more: bool, end: str | None, of: str
) -> dict[str, Any]:
    """A Relay-style connection of `count` edges (`edge` builds one) and its pageInfo."""
    answer: dict[str, Any] = {}
    for child in children(field):
        if child.name == "edges":
            answer[child.key] = [edge(child, index) for index in range(count)]
        elif child.name == "pageInfo":
            info = {"hasNextPage": more, "endCursor": end, TYPENAME: "PageInfo"}
            answer[child.key] = {key: info[name] for key, name in child.leaves()}
        else:
            answer[child.key] = f"{of}Connection"
    return answer


_LEVEL_NUMBERS = {"depth": "depth", "count": "count", "blockedCount": "blocked_count"}
"""JobLevel's integer fields: GraphQL name -> models.jobs.JobLevel attribute."""


async def _levels(job_id: str, fields: tuple[Field, ...], context: Context) -> list[dict[str, Any]]:
    levels = context.store.job_levels(await context.job_stages.load(job_id))
    answer = []
    for level in levels:
        shown: dict[str, Any] = {}
        for field in fields:
            if field.name == "statusCounts":
                shown[field.key] = status_count_rows(level.status_counts, field.leaves())
            elif field.name in ("depth", "count", "blockedCount"):
                shown[field.key] = graphql_int(getattr(level, _LEVEL_NUMBERS[field.name]))
            else:
                shown[field.key] = "JobLevel"
        answer.append(shown)
    return answer
