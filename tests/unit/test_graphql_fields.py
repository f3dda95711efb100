"""The GraphQL Task type and the mutation inputs declare their fields one by one (so that mypy checks them):
they must be exactly the fields a client may set (`models.task.CLIENT_FIELDS`), with the types
`graphql_schema.fields.CLIENT_FIELD_TYPES` gives them, in the same order, or the REST and GraphQL shapes drift."""

from __future__ import annotations

import typing
from datetime import datetime

import pytest
import strawberry

from graphql_schema import inputs, tasks
from graphql_schema.fields import CLIENT_FIELD_TYPES


def _declared(cls: type, skip: set[str]) -> dict[str, object]:
    hints = typing.get_type_hints(cls, {**vars(inputs), **vars(tasks), "datetime": datetime, "strawberry": strawberry})
    return {name: hint for name, hint in hints.items() if name not in skip}


@pytest.mark.parametrize(
    ("cls", "own"),
    [
        (tasks.TaskFields, {"id", "creation_timestamp", "update_timestamp"}),
        (inputs.TaskInput, {"id", "nexts"}),
        (inputs.TaskPatchInput, {"id"}),
    ],
)
def test_the_graphql_shapes_declare_every_client_field_with_its_type(cls: type, own: set[str]) -> None:
    declared = _declared(cls, own)
    assert list(declared) == list(CLIENT_FIELD_TYPES)
    assert declared == CLIENT_FIELD_TYPES
