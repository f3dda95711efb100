"""Planning a create, without MongoDB: the nested `nexts` flattened into one list, the rules a create must pass
before anything is written, and the documents to insert once the ids are known.

The rules, in the order they are checked (the first broken one is the error): at least one task; at most
`Limits.max_tasks_per_create` tasks, nested ones included; no id given twice. An id that is already stored
(TaskAlreadyExists) is checked after these, against MongoDB (models.ids)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from bson.int64 import Int64
from pydantic import TypeAdapter

from models.errors import InvalidOperation
from models.limits import Limits
from models.stored_task import TaskDoc
from models.task import DEFAULT_TYPE, SERVER_OWNED_ON_CREATE, TaskCreate, now_utc


@dataclass(slots=True)
class PlannedTask:
    fields: dict[str, Any]
    """The task's fields as stored, under their stored names: the client's, nulls left out (not `id`, `nexts` or
    the timestamps), with the defaults applied (`with_defaults`)."""
    id: int | None
    """The id the client gave, if any."""
    parent: int | None
    """Index into the plan of the task whose `nexts` held this one; None for a task of the request's list."""
    children: list[int] = field(default_factory=list)
    """Indexes into the plan of the tasks its `nexts` held, in request order."""


_T = TypeVar("_T")
Render = Callable[[TaskDoc, Mapping[int, TaskDoc]], _T]
"""What a front end makes of a created task for its answer: `render(doc, docs_by_id)`, every task of the create by
id beside it (to show linked ones)."""

_TASK_LIST: TypeAdapter[list[TaskCreate]] = TypeAdapter(list[TaskCreate])


def plan_creation(tasks: Sequence[TaskCreate] | Sequence[dict[str, Any]]) -> list[PlannedTask]:
    """Nested `nexts` flattened depth-first: each task followed by its sub-graph, in request order. Models are
    dumped to plain data at once (one pydantic-core call rather than one per task); plain data
    (models.task.created_tasks_of) is taken as it is, its nulls and ignored fields left out."""
    plan: list[PlannedTask] = []
    if tasks and isinstance(tasks[0], TaskCreate):
        specs: list[dict[str, Any]] = _TASK_LIST.dump_python(
            cast(list[TaskCreate], list(tasks)), by_alias=True, exclude_none=True
        )
    else:
        specs = cast(list[dict[str, Any]], list(tasks))
    stack: list[tuple[dict[str, Any], int | None]] = [(spec, None) for spec in reversed(specs)]
    while stack:
        spec, parent = stack.pop()
        if None in spec.values() or not SERVER_OWNED_ON_CREATE.isdisjoint(spec):
            spec = {name: value for name, value in spec.items() if value is not None}
            spec.pop("creation-timestamp", None)
            spec.pop("update-timestamp", None)
        index = len(plan)
        nexts = spec.pop("nexts", None)
        task_id = spec.pop("id", None)
        plan.append(PlannedTask(with_defaults(spec, None if parent is None else plan[parent].fields), task_id, parent))
        if parent is not None:
            plan[parent].children.append(index)
        children = nexts.get("tasks") if nexts else None
        if children:
            stack.extend([(child, index) for child in reversed(children)])
    return plan


def with_defaults(fields: dict[str, Any], parent: Mapping[str, Any] | None) -> dict[str, Any]:
    """A task's fields with the defaults of what it leaves out, as stored: `job-id` (its parent's, for a task
    of a parent's `nexts`), `root` (true only for a task no other task of the request holds) and `type`
    (DEFAULT_TYPE). The one place these defaults live, applied when a create is planned: two requests whose
    plans are equal store the same tasks, whether they sent a default or left it out (an idempotency key's
    fingerprint compares plans, models.idempotency). `fields` may be updated in place."""
    if parent is not None and "job-id" not in fields and "job-id" in parent:
        fields = {"job-id": parent["job-id"], **fields}  # first, where the stored layout has it
    fields.setdefault("root", parent is None)
    fields.setdefault("type", DEFAULT_TYPE)
    return fields


def duplicate_ids(ids: Iterable[int]) -> list[int]:
    """The ids that occur more than once, ascending."""
    seen: set[int] = set()
    repeated: set[int] = set()
    for task_id in ids:
        (repeated if task_id in seen else seen).add(task_id)
    return sorted(repeated)


def client_ids_of(plan: Sequence[PlannedTask], limits: Limits) -> list[int]:
    """The ids the request gives, in plan order, once the plan passes the rules above; else InvalidOperation
    naming the first rule broken."""
    if not plan:
        raise InvalidOperation("tasks: at least one task is required")
    limits.refuse_task_count(len(plan))
    client_ids = [item.id for item in plan if item.id is not None]
    repeated = duplicate_ids(client_ids)
    if repeated:
        raise InvalidOperation(f"task id {', '.join(map(str, repeated))} appears more than once in the request")
    return client_ids


def new_documents(plan: Sequence[PlannedTask], ids: Sequence[int], now: datetime | None = None) -> list[TaskDoc]:
    """The documents to store for a plan whose tasks get `ids` (one per planned task, in plan order): ids as
    int64, links both ways, one creation time (`now`, default the current time), and the planned fields (their
    defaults applied by `plan_creation`). The same plan, ids and time give the same documents (an idempotent
    create's answer is rebuilt so)."""
    now = now or now_utc()
    int64_ids = list(map(Int64, ids))
    docs: list[TaskDoc] = []
    for index, item in enumerate(plan):
        fields, parent, children = item.fields, item.parent, item.children
        doc: TaskDoc = {"_id": int64_ids[index]}
        if "status" in fields:
            doc["status"] = fields["status"]
        doc["creation-timestamp"] = doc["update-timestamp"] = now
        doc.update(fields)
        doc["nexts"] = [int64_ids[child] for child in children] if children else []
        doc["previous"] = [int64_ids[parent]] if parent is not None else []
        docs.append(doc)
    return docs
