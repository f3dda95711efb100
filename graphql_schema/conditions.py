"""`Task.etag` and the `ifMatch` argument of the task mutations: the REST API's conditional writes (RFC 9110
section 13.1.1, models.conditions) in GraphQL. A stale ifMatch is the error PRECONDITION_FAILED.

GraphQL answers are JSON, so `etag` is the ETag of the task's JSON representation (the one REST's JSON answers
carry); `ifMatch` accepts the current ETag of any representation, as REST's If-Match does (a caller may have
read the task as XML)."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from graphql_schema.context import Context
from models import JSON_MEDIA_TYPE, Preconditions, TaskDoc, etag_of, shown_next_ids
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


async def task_etag(task: strawberry.Parent[TaskDoc], info: Info[Context, None]) -> str:
    (etag,) = await json_etags([task], info.context)
    return etag


async def json_etags(docs: list[TaskDoc], context: Context) -> list[str]:
    """Each task's `etag`: the ETag of its JSON representation, which for a navigable task shows its next tasks
    (models.conditions.shown_next_ids), read with the request's other reads of tasks."""
    wanted = sorted({next_id for doc in docs for next_id in shown_next_ids(doc)})
    shown = dict(zip(wanted, await context.tasks.load_many(wanted), strict=True)) if wanted else {}
    return [etag_of(doc, JSON_MEDIA_TYPE, shown) for doc in docs]
