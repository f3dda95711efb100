"""`Task.etag` and the `ifMatch` argument of the task mutations: the REST API's conditional writes (RFC 9110
section 13.1.1, models.conditions) in GraphQL. A stale ifMatch is the error PRECONDITION_FAILED."""

from __future__ import annotations

from typing import Annotated

import strawberry

from models import TaskDoc, etag_of
from web.etags import EntityTags, parse_entity_tags

IfMatch = Annotated[
    str | None,
    strawberry.argument(
        description="Only if the task is still this version: a Task.etag value (with its quotes), several separated "
        'by commas, or "*" (any version). Else the error PRECONDITION_FAILED, and nothing changes.'
    ),
]


def condition(if_match: str | None) -> EntityTags | None:
    """The parsed argument; BAD_USER_INPUT naming ifMatch when it is no list of entity tags nor `*`."""
    return parse_entity_tags(if_match, "ifMatch") if if_match is not None else None


def task_etag(task: strawberry.Parent[TaskDoc]) -> str:
    return etag_of(task)
