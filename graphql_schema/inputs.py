"""The mutations' inputs, generated from `models.task.CLIENT_FIELDS` like the Task type, and their conversion
to the API-named dicts the graph store validates.

Python names end in Input where models/ has a class of the same name (the schema keeps the plain names).
"""

from __future__ import annotations

from typing import Any

import strawberry

from graphql_schema.fields import CLIENT_FIELD_TYPES, generated
from models import parse_task_id
from models.task import CLIENT_FIELDS

TaskInput = strawberry.input(
    generated(
        "TaskInput",
        {"id": strawberry.ID | None, **CLIENT_FIELD_TYPES, "nexts": "list[TaskInput] | None"},
        None,
        __name__,
    ),
    description="A task to create; `nexts` are created too and linked after it.",
)
TaskPatchInput = strawberry.input(
    generated("TaskPatch", {"id": strawberry.ID | None, **CLIENT_FIELD_TYPES}, strawberry.UNSET, __name__),
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
