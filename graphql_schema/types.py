"""The GraphQL types (CONTRACT §4): Task with its traversals, Job, Edge, StatusCount, TaskEvent, the inputs.

Task field names are the contract's hyphenated names in camelCase; the classes holding them are generated from
`models.task.CLIENT_FIELDS` so the REST and GraphQL shapes cannot drift apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from graphql_schema.context import Context
from graphql_schema.errors import user_error
from models import TaskDoc, TaskEventKind, format_datetime, parse_datetime, parse_task_id, task_matches
from models.task import CLIENT_FIELDS, DATE_FIELDS, INT_FIELDS

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

# ---- Task -------------------------------------------------------------------------------------------------------

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


def _linked(
    task: TaskDoc, info: Info[Context, None], direction: str, status: list[str] | None, type_: str | None
) -> list[TaskDoc] | Awaitable[list[TaskDoc]]:
    """The linked tasks, at once when this request already fetched them all (no coroutine per task)."""
    ids = sorted(set(task.get(direction) or ()))
    docs = info.context.cached_tasks(ids)
    if docs is None:
        return _load_linked(info, ids, status, type_)
    return [doc for doc in docs if doc is not None and task_matches(doc, status, type_)]


async def _load_linked(
    info: Info[Context, None], ids: list[int], status: list[str] | None, type_: str | None
) -> list[TaskDoc]:
    docs = await info.context.tasks.load_many(ids)
    return [doc for doc in docs if doc is not None and task_matches(doc, status, type_)]


def _neighbours(direction: str) -> Callable[..., list[Task] | Awaitable[list[Task]]]:
    """The resolver of `nexts` or `previous`."""

    def resolve(
        task: strawberry.Parent[TaskDoc],
        info: Info[Context, None],
        status: StatusFilter = None,
        type_: TypeFilter = None,
    ) -> list[Task] | Awaitable[list[Task]]:
        return _linked(task, info, direction, status, type_)  # type: ignore[return-value]

    return resolve


def _reachable(direction: str) -> Callable[..., Awaitable[list[Task]]]:
    """The resolver of `descendants` (over nexts) or `ancestors` (over previous)."""

    async def resolve(
        task: strawberry.Parent[TaskDoc],
        info: Info[Context, None],
        max_depth: DepthBound = None,
        status: StatusFilter = None,
        type_: TypeFilter = None,
    ) -> list[Task]:
        return await _walk(task, info, direction, max_depth, status, type_)  # type: ignore[return-value]

    return resolve


async def _walk(
    task: TaskDoc,
    info: Info[Context, None],
    direction: str,
    max_depth: int | None,
    status: list[str] | None,
    type_: str | None,
) -> list[TaskDoc]:
    """Breadth-first over links as stored, so it is safe on cycles that other tools wrote directly.
    Each level is one DataLoader batch: one MongoDB round trip per level, never one per task."""
    if max_depth is not None and max_depth < 0:
        raise user_error("maxDepth: must be 0 or more")
    bound = info.context.max_traversal
    seen = {task["_id"]}
    frontier = _unseen(task.get(direction) or (), seen)
    found: list[TaskDoc] = []
    depth = 0
    while frontier and (max_depth is None or depth < max_depth):
        depth += 1
        level = [doc for doc in await info.context.tasks.load_many(frontier) if doc is not None]
        found.extend(level)
        if len(found) > bound:
            raise user_error(
                f"traversal bound exceeded: more than {bound} tasks (TRACKING_GRAPHQL_MAX_TRAVERSAL)",
                "TRAVERSAL_TOO_LARGE",
            )
        frontier = _unseen((i for doc in level for i in doc.get(direction) or ()), seen)
    return [doc for doc in found if task_matches(doc, status, type_)]


@strawberry.type(description="A workflow execution task; its links lead to other tasks.")
class Task(TaskFields):  # type: ignore[misc, valid-type]  # TaskFields is generated from CLIENT_FIELDS
    """Never instantiated: the value of a Task is its stored document, read through `read_field`."""

    # Strawberry's stubs type a field with a resolver as StrawberryField, not as the value it resolves to.
    nexts: list[Task] = strawberry.field(  # type: ignore[assignment]
        resolver=_neighbours("nexts"), description="Direct next tasks, by id."
    )
    previous: list[Task] = strawberry.field(  # type: ignore[assignment]
        resolver=_neighbours("previous"), description="Direct previous tasks, by ascending id."
    )
    descendants: list[Task] = strawberry.field(
        resolver=_reachable("nexts"), description="Every task downstream, breadth-first, each once, this task excluded."
    )
    ancestors: list[Task] = strawberry.field(
        resolver=_reachable("previous"),
        description="Every task upstream, breadth-first, each once, this task excluded.",
    )

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, dict)


def as_tasks(docs: list[TaskDoc]) -> list[Task]:
    """Stored documents, typed as the GraphQL Task they are served as."""
    return docs  # type: ignore[return-value]


def as_task(doc: TaskDoc) -> Task:
    return doc  # type: ignore[return-value]


def _unseen(ids: Iterable[int], seen: set[int]) -> list[int]:
    """The ids not met yet, in order, once each; marks them seen."""
    fresh = [i for i in dict.fromkeys(ids) if i not in seen]
    seen.update(fresh)
    return fresh


# ---- Job --------------------------------------------------------------------------------------------------------


@strawberry.type(description="A link of the graph: `to` is a next task of `from`.")
class Edge:
    from_: strawberry.ID = strawberry.field(name="from")
    to: strawberry.ID


@strawberry.type
class StatusCount:
    status: str | None
    count: int


@strawberry.type(description="The tasks sharing a job-id, with the links between them.")
class Job:
    id: str
    docs: strawberry.Private[list[TaskDoc]]

    @strawberry.field(description="The job's tasks by ascending id; root true/false keeps only (non-)root tasks.")
    def tasks(self, root_: RootFilter = None, status: StatusFilter = None, type_: TypeFilter = None) -> list[Task]:
        return as_tasks(
            [
                doc
                for doc in self.docs
                if (root_ is None or doc.get("root") is root_) and task_matches(doc, status, type_)
            ]
        )

    @strawberry.field(description="The job's root tasks.")
    def roots(self) -> list[Task]:
        return as_tasks([doc for doc in self.docs if doc.get("root") is True])

    @strawberry.field(description="Every link between two tasks of the job.")
    def edges(self) -> list[Edge]:
        members = {doc["_id"] for doc in self.docs}
        return [
            Edge(from_=strawberry.ID(str(doc["_id"])), to=strawberry.ID(str(next_id)))
            for doc in self.docs
            for next_id in doc.get("nexts") or ()
            if next_id in members
        ]

    @strawberry.field(description="How many of the job's tasks have each status (null: no status).")
    def status_counts(self) -> list[StatusCount]:
        counts = Counter(doc.get("status") for doc in self.docs)
        ordered = sorted(counts.items(), key=lambda item: (item[0] is not None, item[0] or ""))
        return [StatusCount(status=status, count=count) for status, count in ordered]


# ---- events -----------------------------------------------------------------------------------------------------

TaskEventKindEnum = strawberry.enum(TaskEventKind, name="TaskEventKind")


@strawberry.type
class TaskEvent:
    kind: TaskEventKindEnum  # type: ignore[valid-type]
    task_id: strawberry.ID
    task: Task | None


# ---- inputs -----------------------------------------------------------------------------------------------------

TaskInput = strawberry.input(
    _generated(
        "TaskInput",
        {"id": strawberry.ID | None, **_CLIENT_FIELD_TYPES, "nexts": "list[TaskInput] | None"},
        None,
    ),
    description="A task to create; `nexts` are created too and linked after it.",
)
TaskPatch = strawberry.input(
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
