"""The mutations' inputs, with the fields of `models.task.CLIENT_FIELDS` like the Task type (written out, so
that they are typed; `tests/unit/test_graphql_fields.py` checks that they are those fields), and their conversion
to the API-named dicts the graph store validates.

Python names end in Input where models/ has a class of the same name (the schema keeps the plain names).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from models import parse_task_id
from models.task import CLIENT_FIELDS


@strawberry.input(description="A task to create; `nexts` are created too and linked after it.")
class TaskInput:
    id: strawberry.ID | None = None
    status: str | None = None
    job_id: str | None = None
    root: bool | None = None
    name: str | None = None
    description: str | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    lock: str | None = None
    workflow_id: str | None = None
    match_id: str | None = None
    rollback_status: str | None = None
    execution_code: str | None = None
    execution_description: str | None = None
    initial_artifact_status: str | None = None
    type: str | None = None
    main_artifact: str | None = None
    final_status: str | None = None
    condition: str | None = None
    path: str | None = None
    running_status: str | None = None
    workflow: str | None = None
    behaviour_on_error: str | None = None
    number_of_retries: int | None = None
    wait_between_retries: int | None = None
    codes_to_do_rollback: str | None = None
    rollback_workflow: str | None = None
    mapping_list: str | None = None
    output_mapping_list: str | None = None
    order_by: str | None = None
    definition_id: str | None = None
    nexts: list[TaskInput] | None = None


@strawberry.input(name="TaskPatch", description="Fields given replace stored values, null clears, absent fields stay.")
class TaskPatchInput:
    id: strawberry.ID | None = strawberry.UNSET
    status: str | None = strawberry.UNSET
    job_id: str | None = strawberry.UNSET
    root: bool | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    start_time: datetime | None = strawberry.UNSET
    finish_time: datetime | None = strawberry.UNSET
    lock: str | None = strawberry.UNSET
    workflow_id: str | None = strawberry.UNSET
    match_id: str | None = strawberry.UNSET
    rollback_status: str | None = strawberry.UNSET
    execution_code: str | None = strawberry.UNSET
    execution_description: str | None = strawberry.UNSET
    initial_artifact_status: str | None = strawberry.UNSET
    type: str | None = strawberry.UNSET
    main_artifact: str | None = strawberry.UNSET
    final_status: str | None = strawberry.UNSET
    condition: str | None = strawberry.UNSET
    path: str | None = strawberry.UNSET
    running_status: str | None = strawberry.UNSET
    workflow: str | None = strawberry.UNSET
    behaviour_on_error: str | None = strawberry.UNSET
    number_of_retries: int | None = strawberry.UNSET
    wait_between_retries: int | None = strawberry.UNSET
    codes_to_do_rollback: str | None = strawberry.UNSET
    rollback_workflow: str | None = strawberry.UNSET
    mapping_list: str | None = strawberry.UNSET
    output_mapping_list: str | None = strawberry.UNSET
    order_by: str | None = strawberry.UNSET
    definition_id: str | None = strawberry.UNSET


def creation_fields(task: TaskInput, path: str) -> dict[str, Any]:
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


def patch_fields(patch: TaskPatchInput) -> dict[str, Any]:
    """A TaskPatch as the API-named dict of the fields it gives (null kept: it clears)."""
    fields: dict[str, Any] = {}
    if patch.id is not strawberry.UNSET and patch.id is not None:
        fields["id"] = parse_task_id(patch.id, "patch.id")
    for python, api in CLIENT_FIELDS.items():
        value = getattr(patch, python)
        if value is not strawberry.UNSET:
            fields[api] = value
    return fields
