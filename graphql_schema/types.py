"""The GraphQL types: Task with its traversals, Job, Edge, StatusCount, TaskEvent, the inputs. Python names end
in Type or Input where models/ has a class of the same name (the schema keeps the plain names).

TaskType field names are the contract's hyphenated names in camelCase; the classes holding them are generated from
`models.task.CLIENT_FIELDS` so the REST and GraphQL shapes cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from graphql_schema.conditions import task_etag
from graphql_schema.context import Context
from graphql_schema.cursors import job_cursor, read_task_cursor, task_cursor
from graphql_schema.errors import camel_case, user_error
from models import (
    JobPosition,
    JobsPage,
    TaskDoc,
    TaskEventKind,
    format_datetime,
    parse_datetime,
    parse_task_id,
    task_matches,
)
from models import JobSummary as StoredJobSummary
from models import TaskChange as StoredTaskChange
from models import TaskEvent as StoredTaskEvent
from models.task import CLIENT_FIELDS, DATE_FIELDS, INT_FIELDS, now_utc

# ---- scalars and ids --------------------------------------------------------------------------------------------


def _serialize_datetime(value: Any) -> str:
    return format_datetime(value) if isinstance(value, datetime) else str(value)


def _parse_datetime(value: Any) -> datetime:
    try:
        return parse_datetime(value)
    except ValueError as error:
        raise ValueError(f"DateTime: {error}") from None


DATETIME_SCALAR = strawberry.scalar(
    name="DateTime",
    description="ISO 8601 in UTC with milliseconds (2026-11-22T18:00:00.000Z); in: any offset or epoch ms",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)
"""Maps Python datetimes to the contract's date format (Schema config scalar_map)."""


def _graphql_type(api_name: str) -> Any:
    if api_name in INT_FIELDS:
        return int | None
    if api_name == "root":
        return bool | None
    if api_name in DATE_FIELDS:
        return datetime | None
    return str | None


_REQUIRED = object()


def _generated(name: str, fields: dict[str, Any], default: Any) -> type:
    namespace: dict[str, Any] = {"__annotations__": dict(fields), "__module__": __name__}
    if default is not _REQUIRED:
        namespace.update(dict.fromkeys(fields, default))
    return type(name, (), namespace)


_CLIENT_FIELD_TYPES = {python: _graphql_type(api) for python, api in CLIENT_FIELDS.items()}

# ---- TaskType -------------------------------------------------------------------------------------------------------

TaskFields = strawberry.type(
    _generated(
        "TaskFields",
        {
            "id": strawberry.ID,
            "creation_timestamp": datetime | None,
            "update_timestamp": datetime | None,
            **_CLIENT_FIELD_TYPES,
        },
        _REQUIRED,  # no class-level defaults: every value is read from the stored document
    )
)

StatusFilter = Annotated[list[str] | None, strawberry.argument(description="any of these statuses")]
StatusNotFilter = Annotated[list[str] | None, strawberry.argument(description="none of these statuses")]
TypeFilter = Annotated[str | None, strawberry.argument(name="type", description="exactly this type")]
# `root` names the parent object in a Strawberry resolver, hence the Python name root_.
RootFilter = Annotated[bool | None, strawberry.argument(name="root", description="true: roots only; false: others")]
DepthBound = Annotated[int | None, strawberry.argument(description="levels to follow; unbounded when absent")]


STORED_NAMES = {"creation_timestamp": "creation-timestamp", "update_timestamp": "update-timestamp", **CLIENT_FIELDS}


def read_field(source: Any, name: str) -> Any:
    """Strawberry's default resolver. A Task is served straight from its stored document (a dict): building a
    wrapper object with thirty-odd attributes per task cost more than the rest of a 10k-task query."""
    if type(source) is dict:
        return str(source["_id"]) if name == "id" else source.get(STORED_NAMES[name])
    return getattr(source, name)


@dataclass(frozen=True)
class Selection:
    """Which linked tasks a field keeps: its `status`, `statusNot` and `type` arguments."""

    status: list[str] | None = None
    status_not: list[str] | None = None
    type_: str | None = None

    def keeps(self, doc: TaskDoc | None) -> bool:
        return doc is not None and task_matches(doc, self.status, self.type_, self.status_not)


def _linked(
    task: TaskDoc, info: Info[Context, None], direction: str, selection: Selection
) -> list[TaskDoc] | Awaitable[list[TaskDoc]]:
    """The linked tasks, at once when this request already fetched them all (no coroutine per task)."""
    ids = sorted(set(task.get(direction) or ()))
    docs = info.context.cached_tasks(ids)
    if docs is None:
        return _load_linked(info, ids, selection)
    return [doc for doc in docs if doc is not None and selection.keeps(doc)]


async def _load_linked(info: Info[Context, None], ids: list[int], selection: Selection) -> list[TaskDoc]:
    docs = await info.context.tasks.load_many(ids)
    return [doc for doc in docs if doc is not None and selection.keeps(doc)]


def _neighbours(direction: str) -> Callable[..., list[TaskType] | Awaitable[list[TaskType]]]:
    """The resolver of `nexts` or `previous`."""

    def resolve(
        task: strawberry.Parent[TaskDoc],
        info: Info[Context, None],
        status: StatusFilter = None,
        status_not: StatusNotFilter = None,
        type_: TypeFilter = None,
    ) -> list[TaskType] | Awaitable[list[TaskType]]:
        return _linked(task, info, direction, Selection(status, status_not, type_))  # type: ignore[return-value]

    return resolve


def _reachable(direction: str) -> Callable[..., Awaitable[list[TaskType]]]:
    """The resolver of `descendants` (over nexts) or `ancestors` (over previous)."""

    async def resolve(
        task: strawberry.Parent[TaskDoc],
        info: Info[Context, None],
        max_depth: DepthBound = None,
        status: StatusFilter = None,
        status_not: StatusNotFilter = None,
        type_: TypeFilter = None,
    ) -> list[TaskType]:
        found = await _walk(task, info, direction, max_depth, Selection(status, status_not, type_))
        return as_tasks(found)

    return resolve


async def _walk(
    task: TaskDoc, info: Info[Context, None], direction: str, max_depth: int | None, selection: Selection
) -> list[TaskDoc]:
    """Over links as stored (GraphStore.walk: one aggregation where MongoDB allows); the tasks found also
    answer their own `nexts`/`previous` fields without another round trip."""
    if max_depth is not None and max_depth < 0:
        raise user_error("maxDepth: must be 0 or more")
    found = await info.context.store.walk(task, direction, max_depth, info.context.max_traversal)
    info.context.remember(found)
    return [doc for doc in found if selection.keeps(doc)]


async def _blocked_by(
    task: strawberry.Parent[TaskDoc],
    info: Info[Context, None],
    transitive: Annotated[
        bool, strawberry.argument(description="every upstream task not done, nearest first; else direct ones")
    ] = False,
) -> list[TaskType]:
    """Answers "why is this task not running?": the previous tasks whose status is not done."""
    not_done = Selection(status_not=list(info.context.store.done_statuses))
    if transitive:
        return as_tasks(await _walk(task, info, "previous", None, not_done))
    return as_tasks(await _load_linked(info, sorted(set(task.get("previous") or ())), not_done))


# ---- history ----------------------------------------------------------------------------------------------------

TaskEventKindEnum = strawberry.enum(TaskEventKind, name="TaskEventKind")


def graphql_field_names(stored: list[str]) -> list[str]:
    """Stored (API) field names as GraphQL names them: job-id -> jobId; nexts and previous as they are."""
    return [camel_case(name) for name in stored]


@strawberry.type(description="One recorded change of a task (the task_history collection).")
class TaskChange:
    cursor: str
    at: datetime
    kind: TaskEventKindEnum  # type: ignore[valid-type]
    changed_fields: list[str]
    status: str | None = strawberry.field(description="The task's new status, when this change set it.")


def as_changes(changes: list[StoredTaskChange]) -> list[TaskChange]:
    return [
        TaskChange(
            cursor=change.cursor,
            at=change.at,
            kind=TaskEventKind(change.kind),
            changed_fields=graphql_field_names(change.changed_fields),
            status=change.status,
        )
        for change in changes
    ]


async def _history(task: strawberry.Parent[TaskDoc], info: Info[Context, None]) -> list[TaskChange]:
    return as_changes(await info.context.store.task_history(task["_id"]))


@strawberry.type(name="Task", description="A workflow execution task; its links lead to other tasks.")
class TaskType(TaskFields):  # type: ignore[misc, valid-type]  # TaskFields is generated from CLIENT_FIELDS
    """Never instantiated: the value of a Task is its stored document, read through `read_field`."""

    # Strawberry's stubs type a field with a resolver as StrawberryField, not as the value it resolves to.
    nexts: list[TaskType] = strawberry.field(  # type: ignore[assignment]
        resolver=_neighbours("nexts"), description="Direct next tasks, by id."
    )
    previous: list[TaskType] = strawberry.field(  # type: ignore[assignment]
        resolver=_neighbours("previous"), description="Direct previous tasks, by ascending id."
    )
    descendants: list[TaskType] = strawberry.field(
        resolver=_reachable("nexts"), description="Every task downstream, breadth-first, each once, this task excluded."
    )
    ancestors: list[TaskType] = strawberry.field(
        resolver=_reachable("previous"),
        description="Every task upstream, breadth-first, each once, this task excluded.",
    )
    history: list[TaskChange] = strawberry.field(
        resolver=_history, description="Every recorded change of the task, oldest first (TRACKING_HISTORY_DAYS)."
    )
    blocked_by: list[TaskType] = strawberry.field(
        resolver=_blocked_by,
        description="The previous tasks whose status is not done (TRACKING_DONE_STATUSES): why this one waits.",
    )
    etag: str = strawberry.field(
        resolver=task_etag,
        description="This version of the task (its REST ETag): changes with every change, links included. Give it "
        "as ifMatch to a mutation to change the task only if nobody changed it since.",
    )

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, dict)


def as_tasks(docs: list[TaskDoc]) -> list[TaskType]:
    """Stored documents, typed as the GraphQL Task they are served as."""
    return docs  # type: ignore[return-value]


def as_task(doc: TaskDoc) -> TaskType:
    return doc  # type: ignore[return-value]


# ---- Job --------------------------------------------------------------------------------------------------------


@strawberry.type(description="A link of the graph: `to` is a next task of `from`.")
class Edge:
    from_: strawberry.ID = strawberry.field(name="from")
    to: strawberry.ID


@strawberry.type
class StatusCount:
    status: str | None
    count: int


_INT32_MAX = 2**31 - 1


@strawberry.type(description="A job's progress, from an aggregation over its tasks (any size of job).")
class JobSummary:
    first_start: datetime | None = strawberry.field(description="The earliest start-time of its tasks.")
    last_finish: datetime | None = strawberry.field(description="The latest finish-time of its tasks.")
    last_update: datetime | None = strawberry.field(description="The latest update-timestamp of its tasks.")
    duration_ms: int | None = strawberry.field(
        description="lastFinish (or now, without one) minus firstStart; null without a start, or past 2^31-1 ms "
        "(about 24.8 days, GraphQL's Int): use firstStart and lastFinish then."
    )
    done_count: int = strawberry.field(description="Tasks whose status is done (TRACKING_DONE_STATUSES).")
    progress: float = strawberry.field(description="doneCount / taskCount, from 0 to 1.")


def _summary_of(summary: StoredJobSummary | None) -> JobSummary:
    summary = summary or StoredJobSummary()
    duration = None
    if summary.first_start is not None:
        end = summary.last_finish or now_utc()
        milliseconds = int((end - summary.first_start).total_seconds() * 1000)
        duration = milliseconds if abs(milliseconds) <= _INT32_MAX else None
    return JobSummary(
        first_start=summary.first_start,
        last_finish=summary.last_finish,
        last_update=summary.last_update,
        duration_ms=duration,
        done_count=summary.done_count,
        progress=summary.done_count / summary.task_count if summary.task_count else 0.0,
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

    async def _stored_summary(self, info: Info[Context, None]) -> StoredJobSummary:
        return await info.context.job_summaries.load(self.id) or StoredJobSummary()

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

    @strawberry.field(description="The job's root tasks.")
    async def roots(self, info: Info[Context, None]) -> list[TaskType]:
        return as_tasks([doc for doc in await self._every_task(info) if doc.get("root") is True])

    @strawberry.field(description="Every link between two tasks of the job.")
    async def edges(self, info: Info[Context, None]) -> list[Edge]:
        docs = await self._every_task(info)
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
        ordered = sorted(counts.items(), key=lambda item: (item[0] is not None, item[0] or ""))
        return [StatusCount(status=status, count=count) for status, count in ordered]

    @strawberry.field(description="How many tasks the job has.")
    async def task_count(self, info: Info[Context, None]) -> int:
        return (await self._stored_summary(info)).task_count

    @strawberry.field(description="Times and progress of the job.")
    async def summary(self, info: Info[Context, None]) -> JobSummary:
        return _summary_of(await info.context.job_summaries.load(self.id))

    @strawberry.field(description="A page of the job's tasks by ascending id, for jobs of any size.")
    async def task_page(
        self,
        info: Info[Context, None],
        first: int = 100,
        after: str | None = None,
        status: StatusFilter = None,
        status_not: StatusNotFilter = None,
        type_: TypeFilter = None,
    ) -> TaskConnection:
        after_id = read_task_cursor(after) if after is not None else None
        store = info.context.store
        docs, more = await store.task_page(self.id, page_size(first, info), after_id, status, status_not, type_)
        info.context.remember(docs)
        edges = [TaskEdge(cursor=task_cursor(doc["_id"]), node=as_task(doc)) for doc in docs]
        return TaskConnection(edges=edges, page_info=PageInfo(has_next_page=more, end_cursor=_last_cursor(edges)))

    @strawberry.field(
        description="The chain of linked tasks of the job, from one with no previous task in the job to one with "
        "no next in it, with the largest total duration (finish - start; now - start while running; 0 without a "
        "start). Among equal chains, lower ids win. An error naming a task on the cycle if the links hold one."
    )
    async def critical_path(self, info: Info[Context, None]) -> list[TaskType]:
        return as_tasks(await info.context.store.critical_path(self.id, info.context.max_traversal))


def _last_cursor(edges: list[TaskEdge] | list[JobEdge]) -> str | None:
    return edges[-1].cursor if edges else None


@strawberry.type
class JobEdge:
    cursor: str
    node: Job


@strawberry.type(description="A page of jobs, newest activity first, then by id.")
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo


@strawberry.input(description="Which jobs to list; every condition given must hold.")
class JobFilter:
    id_prefix: str | None = strawberry.field(default=None, description="job ids starting with this")
    status: list[str] | None = strawberry.field(default=None, description="jobs having a task in any of these")
    updated_after: datetime | None = strawberry.field(default=None, description="latest update after this")
    updated_before: datetime | None = strawberry.field(default=None, description="latest update before this")


def job_connection(page: JobsPage) -> JobConnection:
    edges = [
        JobEdge(cursor=job_cursor(JobPosition(job.last_update, job.job_id), page.snapshot), node=Job(id=job.job_id))
        for job in page.jobs
    ]
    return JobConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next, end_cursor=_last_cursor(edges)))


# ---- events -----------------------------------------------------------------------------------------------------


@strawberry.type(description="A change to a task, live from MongoDB's change stream.")
class TaskEvent:
    kind: TaskEventKindEnum  # type: ignore[valid-type]
    task_id: strawberry.ID
    task: TaskType | None = strawberry.field(description="The task after the change; null once deleted.")
    cursor: str = strawberry.field(description="Subscribe with after: this to get every event after this one.")
    at: datetime = strawberry.field(description="When MongoDB recorded the change.")
    changed_fields: list[str] = strawberry.field(
        description="The fields the change set or removed (GraphQL names; nexts/previous when links changed)."
    )


def as_event(event: StoredTaskEvent) -> TaskEvent:
    return TaskEvent(
        kind=event.kind,
        task_id=strawberry.ID(str(event.task_id)),
        task=as_task(event.task) if event.task is not None else None,
        cursor=event.cursor,
        at=event.at,
        changed_fields=graphql_field_names(event.changed_fields),
    )


# ---- inputs -----------------------------------------------------------------------------------------------------

TaskInput = strawberry.input(
    _generated(
        "TaskInput",
        {"id": strawberry.ID | None, **_CLIENT_FIELD_TYPES, "nexts": "list[TaskInput] | None"},
        None,
    ),
    description="A task to create; `nexts` are created too and linked after it.",
)
TaskPatchInput = strawberry.input(
    _generated("TaskPatch", {"id": strawberry.ID | None, **_CLIENT_FIELD_TYPES}, strawberry.UNSET),
    description="Fields given replace stored values, null clears, absent fields stay.",
)


def creation_fields(task: Any, path: str) -> dict[str, Any]:
    """A TaskInput as the API-named dict the graph store validates (absent and null both mean 'not given')."""
    fields: dict[str, Any] = {}
    if task.id is not None:
        fields["id"] = parse_task_id(task.id, f"{path}.id")
    for python, api in CLIENT_FIELDS.items():
        value = getattr(task, python)
        if value is not None:
            fields[api] = value
    if task.nexts is not None:
        fields["nexts"] = {
            "tasks": [creation_fields(child, f"{path}.nexts[{index}]") for index, child in enumerate(task.nexts)]
        }
    return fields


def patch_fields(patch: Any) -> dict[str, Any]:
    """A TaskPatch as the API-named dict of the fields it gives (null kept: it clears)."""
    fields: dict[str, Any] = {}
    if patch.id is not strawberry.UNSET and patch.id is not None:
        fields["id"] = parse_task_id(patch.id, "patch.id")
    for python, api in CLIENT_FIELDS.items():
        value = getattr(patch, python)
        if value is not strawberry.UNSET:
            fields[api] = value
    return fields
