"""`Task.etag` and the `ifMatch` argument of the task mutations: the REST API's conditional writes (RFC 9110
section 13.1.1, models.conditions) in GraphQL. A stale ifMatch is the error PRECONDITION_FAILED.

GraphQL answers are JSON, so `etag` is the ETag of the task's JSON representation (the one REST's JSON answers
carry); `ifMatch` accepts the current ETag of any representation, as REST's If-Match does (a caller may have
read the task as XML)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from models import JSON_MEDIA_TYPE, Preconditions, TaskDoc, etag_of
from web.etags import parse_entity_tags

IfMatch = Annotated[
    str | None,
    strawberry.argument(
        description="Only if the task is still this version: a Task.etag value (with its quotes, or the REST ETag of "
        "any representation), several separated "
        'by commas, or "*" (any version). Else the error PRECONDITION_FAILED, and nothing changes.'
    ),
]


def condition(if_match: str | None) -> Preconditions | None:
    """The parsed argument as the mutation's precondition; BAD_USER_INPUT naming ifMatch when it is no list of
    entity tags nor `*`."""
    return Preconditions(if_match=parse_entity_tags(if_match, "ifMatch")) if if_match is not None else None


def task_etag(task: strawberry.Parent[TaskDoc]) -> str:
    return etag_of(task, JSON_MEDIA_TYPE)
