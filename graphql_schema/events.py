"""Live task events: the TaskEvent type and the `taskEvents` subscription over MongoDB's change stream.

Python names end in Type where models/ has a class of the same name (the schema keeps the plain names).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import field
from datetime import datetime

import strawberry
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.types import Info

from graphql_schema.context import Context
from graphql_schema.errors import as_graphql_error
from graphql_schema.event_delivery import direct_delivery
from graphql_schema.event_payloads import SharedResults, caller_selection
from graphql_schema.metrics import OPEN_SUBSCRIPTIONS
from graphql_schema.tasks import TaskType, as_task, graphql_field_names
from models import GraphError, TaskEventKind
from models import events as stored


@strawberry.type(name="TaskEvent", description="A change to a task, live from MongoDB's change stream.")
class TaskEventType:
    kind: TaskEventKind
    task_id: strawberry.ID
    task: TaskType | None = strawberry.field(
        description="The task after the change; null once deleted, or moved to a job the caller may not see."
    )
    cursor: str = strawberry.field(description="Subscribe with after: this to get every event after this one.")
    at: datetime = strawberry.field(description="When MongoDB recorded the change.")
    changed_fields: list[str] = strawberry.field(
        description="The fields the change set or removed (GraphQL names; nexts/previous when links changed)."
    )
    shared_results: strawberry.Private[SharedResults] = field(default_factory=SharedResults)
    """The answers to this event shared by the subscriptions with the same selection
    (graphql_schema.event_payloads)."""


def as_event(event: stored.TaskEvent) -> TaskEventType:
    """The event's GraphQL object, converted once for every subscription it reaches (the shared stream hands
    each of them the same TaskEvent); it lives as long as the event."""
    shared = event.derived.get(TaskEventType)
    if not isinstance(shared, TaskEventType):
        shared = event.derived[TaskEventType] = _converted(event)
    return shared


def _converted(event: stored.TaskEvent) -> TaskEventType:
    return TaskEventType(
        kind=event.kind,
        task_id=strawberry.ID(str(event.task_id)),
        task=as_task(event.task) if event.task is not None else None,
        cursor=event.cursor,
        at=event.at,
        changed_fields=graphql_field_names(event.changed_fields),
    )


@strawberry.type
class EventQueries:
    @strawberry.field(
        description="A cursor for this moment in the task events (of one job, if given): subscribe to taskEvents "
        "with after: it to get every change made after it was taken. Take it before reading what a view shows, "
        "so that no change falls between the read and the subscription's start."
    )
    async def event_cursor(self, info: Info[Context, None], job_id: str | None = None) -> str:
        return await info.context.store.event_cursor(job_id)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every task created, updated or deleted (in one job, if given). With `after` (an event's "
        "cursor), every event after that one comes first, in order, then live ones: no gap, no duplicate. An "
        "election or a MongoDB restart does not end it; if MongoDB cannot be reached within "
        "TRACKING_SUBSCRIPTION_RESUME_MS it ends with UNAVAILABLE (resume with after); a cursor MongoDB no "
        "longer holds ends it with CURSOR_EXPIRED. A change that cannot be delivered or read comes as kind SKIPPED "
        "(task null): reload that task."
    )
    async def task_events(
        self, info: Info[Context, None], job_id: str | None = None, after: str | None = None
    ) -> AsyncGenerator[TaskEventType]:
        context = info.context
        selection = caller_selection(info.operation, info._raw_info.fragments, info.variable_values)
        delivery = direct_delivery()  # over graphql-transport-ws: answers with data are sent from here
        try:
            context.count_subscription(selection)
            events = context.store.watch_task_events(job_id, after, resume_within_s=context.resume_within_s)
            OPEN_SUBSCRIPTIONS.inc()
            try:
                # Closed here, however this ends: an exception would leave the stream suspended, still registered
                # with the fan-out, until the garbage collector found it (the heap upkeep may freeze it first).
                async with contextlib.aclosing(events):
                    async for event in events:
                        payload = as_event(event)
                        if delivery is not None:
                            try:
                                if await delivery.sent(payload):
                                    continue
                            except WebSocketDisconnected:
                                # The peer is gone: the event goes Strawberry's way, whose send finds it gone and
                                # ends the operation as a peer leaving (ending the stream here would end the
                                # operation as one that finished, counted on /metrics as an operation with no
                                # answer: an error).
                                pass
                        yield payload
            finally:
                OPEN_SUBSCRIPTIONS.dec()
                context.end_subscription(selection)
        except GraphError as error:
            # Raised here, the error ends the stream with its code; Strawberry masks nothing in subscriptions.
            raise as_graphql_error(error) from None
