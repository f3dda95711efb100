"""The compiled path: dashboard queries answered from the reads their selection needs, shaped like the answer.

graphql-core resolves and completes every field of every task one by one (about 60,000 calls for a 10,000-task
job's tasks and edges). For the operations `compiled_plan.plan` recognises, `CompiledQueries` instead reads
what the selection names (one projected find of at most TRACKING_GRAPHQL_MAX_TRAVERSAL + 1 documents for
`tasks`, `edges` and their counts; the summary aggregation otherwise; one read per level of walks, as the
DataLoaders batch them) and builds the `data` dict directly, a column at a time, in the order and with the
values graphql-core would give, after Strawberry has parsed and validated the document (so limits and
validation errors are unchanged; both are remembered by query text). Its reads are the resolvers' own
(graphql_schema.context's DataLoaders, the store's methods): one read model. Whenever the answer would hold an
error (a job over a bound, a page too large, a bad cursor, a cycle, an invalid id, MongoDB out of reach) it
answers "not compiled" and graphql-core answers the operation as usual, errors included. Any other exception
is a fault of this path: answered as an internal error and logged, never run again by graphql-core.

This module holds that rule (the extension, and the parse and validation caches it relies on); the path itself
is `compiled_plan` (which operations, as a plan of fields), `compiled_jobs` (the root fields and a job's
fields: what they read), `compiled_tasks` (lists of tasks, their walks and history) and `compiled_rows` (the
answers' rows built from what was read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from graphql import DocumentNode, GraphQLError
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_schema.compiled_jobs import root_value
from graphql_schema.compiled_plan import Field, NotCompiled, plan
from graphql_schema.context import Context
from graphql_schema.cost_meter import OPERATION_METER
from graphql_schema.errors import INTERNAL_MESSAGE
from graphql_schema.metrics import COMPILED
from graphql_schema.rules import REQUESTED_OPERATION
from models import GraphError, OperationDeadlinePassed, StorageUnavailable
from models.deadline import KNOWN_UNAVAILABLE
from models.tracing import set_current

PARSED_DOCUMENTS = 512
"""How many parsed documents (Strawberry's ParserCache, by query text and parse options), and how many validated
ones, are kept (least recently used go first)."""

_validated: OrderedDict[tuple[object, str | None, str | None], None] = OrderedDict()
"""Documents that passed validation: (schema, query text, requested operation name), least recently used first.
Strawberry's ValidationCache keys on the validation rules, which its limiters build anew for every request (so
it would never hit), and not on the requested operation name, which OneOperationOrAName reads."""
log = logging.getLogger("gateway.graphql")


class CachedParsing(ParserCache):
    """Strawberry's parser cache, leaving a document that does not parse to Strawberry, which parses it again
    and reports the error as it always does."""

    def __init__(self) -> None:
        super().__init__(maxsize=PARSED_DOCUMENTS)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        yield


class CompiledQueries(SchemaExtension):
    """Answers the operations graphql_schema.compiled_plan recognises (the last extension: it runs after every
    validation rule and bound); remembers validated documents."""

    def on_validate(self) -> Iterator[None]:
        """A document validated once (with the same schema, bounds and requested operation) is not validated
        again: validation depends on nothing else. Only documents without errors are remembered."""
        execution = self.execution_context
        key = (execution.schema, execution.query, REQUESTED_OPERATION.get())
        if execution.query and execution.pre_execution_errors is None and key in _validated:
            _validated.move_to_end(key)
            execution.pre_execution_errors = []  # Strawberry's own validation runs only when this is None
            yield
            return
        yield
        if execution.query and execution.pre_execution_errors == []:
            _validated[key] = None
            if len(_validated) > PARSED_DOCUMENTS:
                _validated.popitem(last=False)

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if (
            isinstance(context, Context)
            and context.compiled
            and execution.graphql_document is not None
            and execution.operation_type is OperationType.QUERY
        ):
            unreachable = None
            path = "compiled"
            try:
                data = await compiled_answer(
                    execution.schema._schema,
                    execution.graphql_document,
                    execution.operation_name,
                    execution.variables,
                    context,
                )
            except OperationDeadlinePassed:  # graphql-core reports it: its reads fail at once, the deadline passed
                data = None
            except StorageUnavailable:  # graphql-core reports it, its reads failing at once (no second deadline)
                data, unreachable = None, KNOWN_UNAVAILABLE.set(True)
            except Exception:  # a fault of the compiled path: an error, never the same work done twice
                log.exception("compiled GraphQL path failed")
                execution.result = GraphQLExecutionResult(None, [compiled_path_error()])
                data, path = None, "failed"
            if data is not None:
                execution.result = GraphQLExecutionResult(data, None)
            elif path != "failed":
                path = "generic"
            COMPILED.labels(path).inc()
            set_current("tracking.graphql.path", path)
            try:
                yield
            finally:
                if unreachable is not None:
                    KNOWN_UNAVAILABLE.reset(unreachable)
            return
        yield


async def compiled_answer(
    schema: Any, document: DocumentNode, operation_name: str | None, variables: dict[str, Any] | None, context: Context
) -> dict[str, Any] | None:
    """The `data` of the operation, or None when graphql-core should answer it, the two planned cases: not
    compiled (NotCompiled, from the plan or a value GraphQL would refuse), or an error the answer must show
    (a GraphError: a job over a bound, a cycle; a GraphQLError: an argument refused, say a bad cursor);
    graphql-core gives it with its path and code. StorageUnavailable is raised: MongoDB out of reach is
    reported without waiting for it again. Any other exception is a fault of this path and is raised too."""
    meter = OPERATION_METER.get()
    spent = meter.spent if meter is not None else 0
    try:
        fields = plan(schema, document, operation_name, variables)
        values = await _root_values(fields, context)
        return {field.key: value for field, value in zip(fields, values, strict=True)}
    except StorageUnavailable:
        raise
    except (NotCompiled, GraphError, GraphQLError):  # GraphQLError: an argument refused (say, a bad cursor)
        if meter is not None:  # graphql-core meters the operation from its estimate again
            meter.spent = spent
        return None


async def _root_values(fields: Sequence[Field], context: Context) -> list[Any]:
    """Every root field's answer, resolved at once as graphql-core resolves a query's: their reads overlap, and
    the DataLoaders they read through batch and share them (thirty aliases of one job's summary are one
    aggregation). Should any fail, the others are cancelled and the error that decides the answer is raised:
    MongoDB out of reach first, then one graphql-core must answer, then any other."""
    if len(fields) == 1:
        return [await root_value(fields[0], context)]
    try:
        async with asyncio.TaskGroup() as group:
            answers = [group.create_task(root_value(field, context)) for field in fields]
    except ExceptionGroup as failed:
        errors = list(failed.exceptions)
        for kind in (StorageUnavailable, NotCompiled | GraphError | GraphQLError):
            decisive = next((error for error in errors if isinstance(error, kind)), None)
            if decisive is not None:
                raise decisive from None
        raise errors[0] from None
    return [answer.result() for answer in answers]


def compiled_path_error() -> GraphQLError:
    """What a fault of the compiled path answers (the fault itself goes to the log)."""
    return GraphQLError(INTERNAL_MESSAGE, extensions={"code": "INTERNAL_SERVER_ERROR"})
