"""The schema with its bounds: Query (composed from graphql_schema.tasks and .jobs), Mutation (here) and
Subscription (graphql_schema.events)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext as StrawberryExecutionContext
from strawberry.types import ExecutionResult, Info
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from graphql_schema.compiled import CachedParsing, CompiledQueries
from graphql_schema.conditions import IfMatch, condition
from graphql_schema.context import Context, ForgetReads
from graphql_schema.cost_budget import CostBudget
from graphql_schema.deadline import OperationDeadline
from graphql_schema.errors import (
    CodedErrors,
    RatesOverWebSocket,
    ReadOnlyTokens,
    SubscriptionsOverWebSocket,
    with_codes,
)
from graphql_schema.event_payloads import SharedEventExecution
from graphql_schema.events import EventQueries, Subscription
from graphql_schema.fields import DATETIME_SCALAR, read_field
from graphql_schema.inputs import TaskInput, TaskPatchInput, creation_fields, patch_fields
from graphql_schema.jobs import JobQueries
from graphql_schema.metrics import OperationMetrics
from graphql_schema.nesting import fragment_nesting_bound
from graphql_schema.rules import REQUESTED_OPERATION, OneOperationOrAName, alias_bound_rule, introspection_depth_rule
from graphql_schema.stream_extensions import LeanExtensionsRunner
from graphql_schema.tasks import TaskQueries, TaskType, as_task, as_tasks
from graphql_schema.tracing import OperationSpans
from models import TaskCreate, TaskPatch, defaults, parse_task_id
from models.idempotency import IdempotencyKey, checked_key
from web.auth import caller_identity

Query = merge_types("Query", (TaskQueries, JobQueries, EventQueries))
"""Every query field, each domain's from its own module (tasks, jobs), in that order."""


NextIds = Annotated[list[strawberry.ID], strawberry.argument(name="nextIds")]
PreviousIds = Annotated[list[strawberry.ID], strawberry.argument(name="previousIds")]


async def _add_nexts(
    info: Info[Context, None], id: strawberry.ID, ids: NextIds, if_match: IfMatch = None
) -> list[TaskType] | None:
    task_ids = info.context.limits.task_ids(ids, "nextIds")
    return as_tasks(await info.context.store.add_nexts(parse_task_id(id, "id"), task_ids, condition(if_match)))


async def _add_previous(
    info: Info[Context, None], id: strawberry.ID, ids: PreviousIds, if_match: IfMatch = None
) -> list[TaskType] | None:
    task_ids = info.context.limits.task_ids(ids, "previousIds")
    return as_tasks(await info.context.store.add_previous(parse_task_id(id, "id"), task_ids, condition(if_match)))


async def _remove_nexts(
    info: Info[Context, None], id: strawberry.ID, ids: NextIds, if_match: IfMatch = None
) -> bool | None:
    task_ids = info.context.limits.task_ids(ids, "nextIds")
    await info.context.store.remove_nexts(parse_task_id(id, "id"), task_ids, condition(if_match))
    return True


async def _remove_previous(
    info: Info[Context, None], id: strawberry.ID, ids: PreviousIds, if_match: IfMatch = None
) -> bool | None:
    task_ids = info.context.limits.task_ids(ids, "previousIds")
    await info.context.store.remove_previous(parse_task_id(id, "id"), task_ids, condition(if_match))
    return True


IdempotencyKeyArgument = Annotated[
    str | None,
    strawberry.argument(
        description="Stores the create at most once for this token: the same key and tasks again answer the tasks "
        "the first created (TRACKING_IDEMPOTENCY_HOURS); other tasks: IDEMPOTENCY_KEY_REUSED; while the first is in "
        "progress: IDEMPOTENCY_KEY_IN_FLIGHT. 1 to 255 visible ASCII characters."
    ),
]


def _idempotency_key(context: Context, key: str | None) -> IdempotencyKey | None:
    if key is None:
        return None
    assert context.caller is not None  # mutations need a token (ReadOnlyTokens)
    return IdempotencyKey(caller_identity(context.caller), checked_key(key, "idempotencyKey"))


@strawberry.type
class Mutation:
    """Every field is nullable: a failing field answers null with its error while the others keep what they
    committed (a non-null field's error would null the whole `data`, hiding what the document's other mutations
    stored); the fields run one after another, each whatever the earlier ones answered
    (docs/reference/retries.md)."""

    @strawberry.mutation(description="Create tasks (and their nested nexts), all or nothing.")
    async def create_tasks(
        self,
        info: Info[Context, None],
        tasks: list[TaskInput],
        idempotency_key: IdempotencyKeyArgument = None,
    ) -> list[TaskType] | None:
        key = _idempotency_key(info.context, idempotency_key)
        raw = [creation_fields(task, f"tasks[{index}]") for index, task in enumerate(tasks)]
        info.context.limits.refuse_oversized_creation(raw)
        specs = [TaskCreate.model_validate(fields) for fields in raw]
        docs = await info.context.store.create_tasks(specs, key)
        info.context.remember(docs)
        return as_tasks(docs)

    @strawberry.mutation(description="Merge-update a task: given fields replace, null clears, absent stay.")
    async def update_task(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        patch: TaskPatchInput,
        if_match: IfMatch = None,
    ) -> TaskType | None:
        doc = await info.context.store.update_task(
            parse_task_id(id, "id"), TaskPatch.model_validate(patch_fields(patch)), condition(if_match)
        )
        info.context.remember([doc])
        return as_task(doc)

    @strawberry.mutation(description="Delete a task and every link to or from it.")
    async def delete_task(self, info: Info[Context, None], id: strawberry.ID, if_match: IfMatch = None) -> bool | None:
        await info.context.store.delete_task(parse_task_id(id, "id"), condition(if_match))
        return True

    add_nexts: list[TaskType] | None = strawberry.mutation(
        resolver=_add_nexts, description="Link the task to each next task; returns all its next tasks."
    )
    remove_nexts: bool | None = strawberry.mutation(
        resolver=_remove_nexts,
        description="Unlink the task from each next task (a missing link is no error).",
    )
    add_previous: list[TaskType] | None = strawberry.mutation(
        resolver=_add_previous,
        description="Link each previous task to the task; returns all its previous tasks.",
    )
    remove_previous: bool | None = strawberry.mutation(
        resolver=_remove_previous,
        description="Unlink each previous task from the task (a missing link is no error).",
    )


class TrackingSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Errors the caller caused are answered, not logged; internal ones are logged where they are masked."""

    def create_extensions_runner(
        self, execution_context: StrawberryExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        """Strawberry's runner, visiting per streamed result only the extensions that act on it."""
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)

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
        result = await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        result.errors = with_codes(result.errors)
        return result

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
        results = await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        return _coded_results(results)


async def _coded_results(results: StreamResult) -> StreamResult:
    """The stream's results with a code on every error (`with_codes`); closing it closes the stream. An
    exception out of the stream itself (Strawberry lets those of the hooks before execution escape: the
    WebSocket handlers then end the operation without a word) becomes a last result with that error, coded
    and logged; before any result, a PreExecutionError, which the protocols answer with an `error` message."""
    started = False
    async with contextlib.aclosing(results):
        try:
            async for result in results:
                if isinstance(result, ExecutionResult) and result.errors:  # PreExecutionError is one
                    result.errors = with_codes(result.errors)
                started = True
                yield result
        except Exception as error:
            coded = with_codes([GraphQLError(str(error), original_error=error)])
            yield (ExecutionResult if started else PreExecutionError)(data=None, errors=coded)


def build_schema(
    max_depth: int, max_aliases: int, max_tokens: int, max_fragment_depth: int = defaults.MAX_FRAGMENT_DEPTH
) -> strawberry.Schema:
    """The schema with its bounds; each extension is a factory, so every request gets fresh instances."""
    return TrackingSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DATETIME_SCALAR}, default_resolver=read_field),
        execution_context_class=SharedEventExecution,  # one answer per event and selection, for all subscribers
        extensions=[
            fragment_nesting_bound(max_fragment_depth, max_tokens),  # first: before any rule follows a spread
            functools.partial(QueryDepthLimiter, max_depth=max_depth),
            functools.partial(
                AddValidationRules,
                [introspection_depth_rule(max_depth), OneOperationOrAName, alias_bound_rule(max_aliases)],
            ),
            functools.partial(MaxTokensLimiter, max_token_count=max_tokens),
            CachedParsing,  # Strawberry's parser cache, after the token bound set the parse options
            CodedErrors,
            ReadOnlyTokens,
            RatesOverWebSocket,  # HTTP requests are counted by the router, before the body is read
            SubscriptionsOverWebSocket,  # a refusal: before every hook that holds state across execution
            CostBudget,  # after the refusals that need no estimate; before anything else reads
            OperationDeadline,  # around every read of the operation, the compiled path's included
            OperationMetrics,
            OperationSpans,  # before CompiledQueries: a compiled answer is read within the operation's span
            ForgetReads,  # once an operation has its answer, its reads are dropped
            CompiledQueries,  # last: it answers after every bound and validation rule has run
        ],
    )
