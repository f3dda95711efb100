"""The Task type with its traversals and history, and the queries by task id.

Python names end in Type where models/ has a class of the same name (the schema keeps the plain names). A Task
is never built: its value is the stored document, read through `fields.read_field`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

import strawberry
from strawberry.types import Info

from graphql_schema.conditions import task_etag
from graphql_schema.context import Context
from graphql_schema.cost_meter import charge
from graphql_schema.errors import camel_case, user_error
from models import Direction, TaskDoc, TaskEventKind, parse_task_id, task_matches
from models import history as stored


@strawberry.type
class TaskFields:
    """The Task's own fields: its id, the server's timestamps and every field of `models.task.CLIENT_FIELDS`
    (written out, so that they are typed; `tests/unit/test_graphql_fields.py` checks that they are those fields).
    No defaults: every value is read from the stored document (`fields.read_field`)."""

    id: strawberry.ID
    creation_timestamp: datetime | None
    update_timestamp: datetime | None
    status: str | None
    job_id: str | None
    root: bool | None
    name: str | None
    description: str | None
    start_time: datetime | None
    finish_time: datetime | None
    lock: str | None
    workflow_id: str | None
    match_id: str | None
    rollback_status: str | None
    execution_code: str | None
    execution_description: str | None
    initial_artifact_status: str | None
    type: str | None
    main_artifact: str | None
    final_status: str | None
    condition: str | None
    path: str | None
    running_status: str | None
    workflow: str | None
    behaviour_on_error: str | None
    number_of_retries: int | None
    wait_between_retries: int | None
    codes_to_do_rollback: str | None
    rollback_workflow: str | None
    mapping_list: str | None
    output_mapping_list: str | None
    order_by: str | None
    definition_id: str | None


StatusFilter = Annotated[list[str] | None, strawberry.argument(description="any of these statuses")]
StatusNotFilter = Annotated[list[str] | None, strawberry.argument(description="none of these statuses")]
TypeFilter = Annotated[str | None, strawberry.argument(name="type", description="exactly this type")]
# `root` names the parent object in a Strawberry resolver, hence the Python name root_.
RootFilter = Annotated[bool | None, strawberry.argument(name="root", description="true: roots only; false: others")]
"""The links a traversal follows: the stored field holding them."""
DepthBound = Annotated[int | None, strawberry.argument(description="levels to follow; unbounded when absent")]


@dataclass(frozen=True)
class Selection:
    """Which linked tasks a field keeps: its `status`, `statusNot` and `type` arguments."""

    status: list[str] | None = None
    status_not: list[str] | None = None
    type_: str | None = None

    def keeps(self, doc: TaskDoc | None) -> bool:
        return doc is not None and task_matches(doc, self.status, self.type_, self.status_not)


def _linked(
    task: TaskDoc, info: Info[Context, None], direction: Direction, selection: Selection
) -> list[TaskDoc] | Awaitable[list[TaskDoc]]:
    """The linked tasks, at once when this request already fetched them all (no coroutine per task)."""
    ids = sorted(set(task.get(direction) or ()))
    charge(info._raw_info.field_nodes[0], [len(ids)])  # a task holds any number of links: metered
    docs = info.context.cached_tasks(ids)
    if docs is None:
        return _load_linked(info, ids, selection)
    return [doc for doc in docs if doc is not None and selection.keeps(doc)]


async def _load_linked(info: Info[Context, None], ids: list[int], selection: Selection) -> list[TaskDoc]:
    docs = await info.context.tasks.load_many(ids)
    return [doc for doc in docs if doc is not None and selection.keeps(doc)]


def _neighbours(direction: Direction) -> Callable[..., list[TaskType]]:
    """The resolver of `nexts` or `previous`. Typed as giving the list: it gives an awaitable of it when the
    linked tasks must be read first, which graphql-core awaits (the field's value is the list either way)."""

    def resolve(
        task: strawberry.Parent[TaskDoc],
        info: Info[Context, None],
        status: StatusFilter = None,
        status_not: StatusNotFilter = None,
        type_: TypeFilter = None,
    ) -> list[TaskType] | Awaitable[list[TaskType]]:
        linked = _linked(task, info, direction, Selection(status, status_not, type_))
        return cast("list[TaskType] | Awaitable[list[TaskType]]", linked)  # served as Tasks: see as_tasks

    return cast("Callable[..., list[TaskType]]", resolve)


def _reachable(direction: Direction) -> Callable[..., Awaitable[list[TaskType]]]:
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
    task: TaskDoc, info: Info[Context, None], direction: Direction, max_depth: int | None, selection: Selection
) -> list[TaskDoc]:
    """Over links as stored, the walks of every task of a list together (Context.walks: GraphStore.walk_many);
    the tasks found also answer their own `nexts`/`previous` fields without another round trip."""
    if max_depth is not None and max_depth < 0:
        raise user_error("maxDepth: must be 0 or more")
    info.context.remember([task])
    found = await info.context.walks.load((task["_id"], direction, max_depth))
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
    previous = sorted(set(task.get("previous") or ()))
    charge(info._raw_info.field_nodes[0], [len(previous)])  # a task holds any number of links: metered
    return as_tasks(await _load_linked(info, previous, not_done))


# ---- history ----------------------------------------------------------------------------------------------------

strawberry.enum(TaskEventKind, name="TaskEventKind")
"""models' TaskEventKind is the GraphQL enum too: `strawberry.enum` registers the class itself, which fields then
name as their type."""


def graphql_field_names(stored_names: list[str]) -> list[str]:
    """Stored (API) field names as GraphQL names them: job-id -> jobId; nexts and previous as they are."""
    return [camel_case(name) for name in stored_names]


@strawberry.type(name="TaskChange", description="One recorded change of a task (the task_history collection).")
class TaskChangeType:
    cursor: str
    at: datetime
    kind: TaskEventKind
    changed_fields: list[str]
    status: str | None = strawberry.field(description="The task's new status, when this change set it.")
    actor: str | None = strawberry.field(
        description="Who made the change through the gateway: the token's name or the JWT's subject; null for a "
        "change a tool made directly in MongoDB."
    )
    actor_issuer: str | None = strawberry.field(description="The OpenID issuer of a JWT actor; null for tokens.")


def as_changes(changes: list[stored.TaskChange]) -> list[TaskChangeType]:
    return [
        TaskChangeType(
            cursor=change.cursor,
            at=change.at,
            kind=TaskEventKind(change.kind),
            changed_fields=graphql_field_names(change.changed_fields),
            status=change.status,
            actor=change.actor,
            actor_issuer=change.actor_issuer,
        )
        for change in changes
    ]


LastChanges = Annotated[
    int | None,
    strawberry.argument(
        description="How many of the newest changes, at most TRACKING_GRAPHQL_MAX_HISTORY (the default when not given)."
    ),
]


Before = Annotated[
    str | None,
    strawberry.argument(
        description="Only changes older than this cursor (a change's `cursor`): the page before it, to page back "
        "through a long history."
    ),
]


def history_size(last: int | None, max_history: int) -> int:
    """How many of a task's newest changes a history field returns: `last` within 1 and
    TRACKING_GRAPHQL_MAX_HISTORY, the bound when not given."""
    if last is None:
        return max_history
    if last < 1:
        raise user_error("last: must be at least 1")
    if last > max_history:
        raise user_error(f"last: at most {max_history} (TRACKING_GRAPHQL_MAX_HISTORY)")
    return last


async def _history(
    task: strawberry.Parent[TaskDoc], info: Info[Context, None], last: LastChanges = None, before: Before = None
) -> list[TaskChangeType]:
    context = info.context
    page = await context.histories.load((task["_id"], history_size(last, context.max_history), before))
    return as_changes(page.changes)


async def _history_truncated(
    task: strawberry.Parent[TaskDoc], info: Info[Context, None], last: LastChanges = None, before: Before = None
) -> bool:
    context = info.context
    return (await context.histories.load((task["_id"], history_size(last, context.max_history), before))).truncated


# ---- Task -------------------------------------------------------------------------------------------------------


@strawberry.type(name="Task", description="A workflow execution task; its links lead to other tasks.")
class TaskType(TaskFields):
    """Never instantiated: the value of a Task is its stored document, read through `read_field`."""

    nexts: list[TaskType] = strawberry.field(resolver=_neighbours("nexts"), description="Direct next tasks, by id.")
    previous: list[TaskType] = strawberry.field(
        resolver=_neighbours("previous"), description="Direct previous tasks, by ascending id."
    )
    descendants: list[TaskType] = strawberry.field(
        resolver=_reachable("nexts"), description="Every task downstream, breadth-first, each once, this task excluded."
    )
    ancestors: list[TaskType] = strawberry.field(
        resolver=_reachable("previous"),
        description="Every task upstream, breadth-first, each once, this task excluded.",
    )
    history: list[TaskChangeType] = strawberry.field(
        resolver=_history,
        description="The task's newest recorded changes (kept TRACKING_HISTORY_DAYS), oldest first: `last` of them, "
        "TRACKING_GRAPHQL_MAX_HISTORY when not given. historyTruncated says whether older ones were left out.",
    )
    history_truncated: bool = strawberry.field(
        resolver=_history_truncated,
        description="Whether the task has recorded changes older than those `history(last, before)` returns.",
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
    """Stored documents, typed as the GraphQL Task they are served as (a Task is never built: `read_field`
    serves its fields from the document)."""
    return cast("list[TaskType]", docs)


def as_task(doc: TaskDoc) -> TaskType:
    return cast(TaskType, doc)


@strawberry.type
class TaskQueries:
    """The `Query` fields that look tasks up by id."""

    @strawberry.field(description="The task with this id, or null.")
    async def task(self, info: Info[Context, None], id: strawberry.ID) -> TaskType | None:
        doc = await info.context.tasks.load(parse_task_id(id, "id"))
        return as_task(doc) if doc is not None else None

    @strawberry.field(description="The tasks with these ids, in the same order; null for an unknown id.")
    async def tasks(self, info: Info[Context, None], ids: list[strawberry.ID]) -> list[TaskType | None]:
        info.context.limits.refuse_long_list(ids, "ids")
        docs = await info.context.tasks.load_many([parse_task_id(i, "ids") for i in ids])
        return [as_task(doc) if doc is not None else None for doc in docs]

    @strawberry.field(
        description="The newest recorded changes of the task with this id, also once deleted, oldest first: `last` "
        "of them, TRACKING_GRAPHQL_MAX_HISTORY when not given (Task.historyTruncated says whether there are more)."
    )
    async def task_history(
        self, info: Info[Context, None], id: strawberry.ID, last: LastChanges = None, before: Before = None
    ) -> list[TaskChangeType]:
        context = info.context
        size = history_size(last, context.max_history)
        return as_changes((await context.histories.load((parse_task_id(id, "id"), size, before))).changes)
