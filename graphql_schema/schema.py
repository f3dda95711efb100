"""Query, Mutation and Subscription over the graph store, and the schema with its bounds."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.types import ExecutionResult, Info
from strawberry.types.graphql import OperationType

from graphql_schema.conditions import IfMatch, condition
from graphql_schema.context import Context
from graphql_schema.cursors import read_job_cursor
from graphql_schema.errors import CodedErrors, ReadOnlyTokens, as_graphql_error
from graphql_schema.metrics import OPEN_SUBSCRIPTIONS, OperationMetrics
from graphql_schema.rules import REQUESTED_OPERATION, OneOperationOrAName, introspection_depth_rule
from graphql_schema.types import (
    DATETIME_SCALAR,
    Job,
    JobConnection,
    JobFilter,
    TaskChange,
    TaskEvent,
    TaskInput,
    TaskPatchInput,
    TaskType,
    as_changes,
    as_event,
    as_task,
    as_tasks,
    creation_fields,
    job_connection,
    page_size,
    patch_fields,
    read_field,
)
from models import GraphError, TaskCreate, TaskPatch, parse_task_id
from models import JobFilter as StoredJobFilter


@strawberry.type
class Query:
    @strawberry.field(description="The task with this id, or null.")
    async def task(self, info: Info[Context, None], id: strawberry.ID) -> TaskType | None:
        doc = await info.context.tasks.load(parse_task_id(id, "id"))
        return as_task(doc) if doc is not None else None

    @strawberry.field(description="The tasks with these ids, in the same order; null for an unknown id.")
    async def tasks(self, info: Info[Context, None], ids: list[strawberry.ID]) -> list[TaskType | None]:
        info.context.store.limits.refuse_long_list(ids, "ids")
        docs = await info.context.tasks.load_many([parse_task_id(i, "ids") for i in ids])
        return [as_task(doc) if doc is not None else None for doc in docs]

    @strawberry.field(description="Every recorded change of the task with this id, oldest first, also once deleted.")
    async def task_history(self, info: Info[Context, None], id: strawberry.ID) -> list[TaskChange]:
        return as_changes(await info.context.store.task_history(parse_task_id(id, "id")))

    @strawberry.field(description="The job with this id, or null when no task has this job-id.")
    async def job(self, info: Info[Context, None], id: str) -> Job | None:
        return Job(id=id) if await info.context.store.job_exists(id) else None

    @strawberry.field(
        description="Jobs, newest activity first (the latest update-timestamp among their tasks), then by id. "
        "Pages read the data as of the first page, so paging is stable while jobs change."
    )
    async def jobs(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: JobFilter | None = None,
    ) -> JobConnection:
        position, snapshot = read_job_cursor(after) if after is not None else (None, None)
        wanted = filter or JobFilter()
        job_filter = StoredJobFilter(wanted.id_prefix, wanted.status, wanted.updated_after, wanted.updated_before)
        page = await info.context.store.list_jobs(page_size(first, info), position, job_filter, snapshot)
        return job_connection(page)


_R = TypeVar("_R", bound=Callable[..., Awaitable[object]])


def _adding(links: str, argument: str) -> Callable[..., Awaitable[list[TaskType]]]:
    """The resolver of addNexts or addPrevious."""

    async def add(
        info: Info[Context, None], id: strawberry.ID, ids: list[strawberry.ID], if_match: IfMatch = None
    ) -> list[TaskType]:
        store = info.context.store
        task_ids = store.limits.task_ids(ids, argument)
        docs = await getattr(store, f"add_{links}")(parse_task_id(id, "id"), task_ids, condition(if_match))
        return as_tasks(docs)

    return _named_ids(add, argument)


def _removing(links: str, argument: str) -> Callable[..., Awaitable[bool]]:
    """The resolver of removeNexts or removePrevious."""

    async def remove(
        info: Info[Context, None], id: strawberry.ID, ids: list[strawberry.ID], if_match: IfMatch = None
    ) -> bool:
        store = info.context.store
        task_ids = store.limits.task_ids(ids, argument)
        await getattr(store, f"remove_{links}")(parse_task_id(id, "id"), task_ids, condition(if_match))
        return True

    return _named_ids(remove, argument)


def _named_ids(resolver: _R, argument: str) -> _R:
    """The resolver's `ids` argument as GraphQL names it (nextIds, previousIds). Set as an object, not in the
    signature: this module's annotations are strings, evaluated where the closure's name is unknown."""
    resolver.__annotations__["ids"] = Annotated[list[strawberry.ID], strawberry.argument(name=argument)]
    return resolver


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create tasks (and their nested nexts), all or nothing.")
    async def create_tasks(
        self,
        info: Info[Context, None],
        tasks: list[TaskInput],  # type: ignore[valid-type]
    ) -> list[TaskType]:
        raw = [creation_fields(task, f"tasks[{index}]") for index, task in enumerate(tasks)]
        info.context.store.limits.refuse_oversized_creation(raw)
        specs = [TaskCreate.model_validate(fields) for fields in raw]
        docs = await info.context.store.create_tasks(specs)
        info.context.remember(docs)
        return as_tasks(docs)

    @strawberry.mutation(description="Merge-update a task: given fields replace, null clears, absent stay.")
    async def update_task(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        patch: TaskPatchInput,  # type: ignore[valid-type]
        if_match: IfMatch = None,
    ) -> TaskType:
        doc = await info.context.store.update_task(
            parse_task_id(id, "id"), TaskPatch.model_validate(patch_fields(patch)), condition(if_match)
        )
        info.context.remember([doc])
        return as_task(doc)

    @strawberry.mutation(description="Delete a task and every link to or from it.")
    async def delete_task(self, info: Info[Context, None], id: strawberry.ID, if_match: IfMatch = None) -> bool:
        await info.context.store.delete_task(parse_task_id(id, "id"), condition(if_match))
        return True

    add_nexts: list[TaskType] = strawberry.mutation(
        resolver=_adding("nexts", "nextIds"), description="Link the task to each next task; returns all its next tasks."
    )
    remove_nexts: bool = strawberry.mutation(
        resolver=_removing("nexts", "nextIds"),
        description="Unlink the task from each next task (a missing link is no error).",
    )
    add_previous: list[TaskType] = strawberry.mutation(
        resolver=_adding("previous", "previousIds"),
        description="Link each previous task to the task; returns all its previous tasks.",
    )
    remove_previous: bool = strawberry.mutation(
        resolver=_removing("previous", "previousIds"),
        description="Unlink each previous task from the task (a missing link is no error).",
    )


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
    ) -> AsyncGenerator[TaskEvent]:
        events = info.context.store.watch_task_events(job_id, after, resume_within_s=info.context.resume_within_s)
        OPEN_SUBSCRIPTIONS.inc()
        try:
            async for event in events:
                yield as_event(event)
        except GraphError as error:
            # Raised here, the error ends the stream with its code; Strawberry masks nothing in subscriptions.
            raise as_graphql_error(error) from None
        finally:
            OPEN_SUBSCRIPTIONS.dec()


class TrackingSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Errors the caller caused are answered, not logged; internal ones are logged where they are masked."""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        REQUESTED_OPERATION.set(operation_name)  # for OneOperationOrAName, in this task
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        REQUESTED_OPERATION.set(operation_name)  # for OneOperationOrAName, in the task that iterates the stream
        return await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )


def build_schema(max_depth: int, max_aliases: int, max_tokens: int) -> strawberry.Schema:
    """The schema with its bounds; each extension is a factory, so every request gets fresh instances."""
    return TrackingSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DATETIME_SCALAR}, default_resolver=read_field),
        extensions=[
            functools.partial(QueryDepthLimiter, max_depth=max_depth),
            functools.partial(AddValidationRules, [introspection_depth_rule(max_depth), OneOperationOrAName]),
            functools.partial(MaxAliasesLimiter, max_alias_count=max_aliases),
            functools.partial(MaxTokensLimiter, max_token_count=max_tokens),
            CodedErrors,
            ReadOnlyTokens,
            OperationMetrics,
        ],
    )
