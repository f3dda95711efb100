"""Graph store errors as GraphQL errors with a clear message and an `extensions.code`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from graphql import GraphQLError
from pydantic import ValidationError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from graphql_schema.error_positions import errors_in_answer
from models import (
    ChangeUnread,
    CommitOutcomeUnknown,
    CursorExpired,
    GraphCycle,
    GraphError,
    IdAllocationFailed,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidOperation,
    JobOutsideScope,
    OperationDeadlinePassed,
    PreconditionFailed,
    StorageUnavailable,
    SubscriberTooSlow,
    TaskAlreadyExists,
    TaskNotFound,
    TooManySubscriptions,
    TraversalTooLarge,
    describe_invalid_fields,
)
from web.auth import read_only_refusal
from web.bearer import read_only_bearer

CODE_OF_GRAPH_ERROR: dict[type[GraphError], str] = {
    TaskNotFound: "NOT_FOUND",
    JobOutsideScope: "FORBIDDEN",
    TaskAlreadyExists: "CONFLICT",
    InvalidOperation: "BAD_USER_INPUT",
    StorageUnavailable: "UNAVAILABLE",
    OperationDeadlinePassed: "DEADLINE_EXCEEDED",
    IdAllocationFailed: "CONFLICT",
    TraversalTooLarge: "TRAVERSAL_TOO_LARGE",
    GraphCycle: "GRAPH_CYCLE",
    CursorExpired: "CURSOR_EXPIRED",
    PreconditionFailed: "PRECONDITION_FAILED",
    CommitOutcomeUnknown: "OUTCOME_UNKNOWN",
    ChangeUnread: "CHANGE_UNREAD",
    IdempotencyKeyReused: "IDEMPOTENCY_KEY_REUSED",
    IdempotencyKeyInFlight: "IDEMPOTENCY_KEY_IN_FLIGHT",
    TooManySubscriptions: "TOO_MANY_SUBSCRIPTIONS",
    SubscriberTooSlow: "SUBSCRIBER_TOO_SLOW",
}

log = logging.getLogger("gateway.graphql")
INTERNAL_MESSAGE = "internal server error"
OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"
"""The operation to run cannot be determined: an unknown operationName, or several operations and none named."""


def user_error(message: str, code: str = "BAD_USER_INPUT") -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def camel_case(name: str) -> str:
    head, *rest = name.replace("-", "_").split("_")
    return head + "".join(part.title() for part in rest)


def describe_domain_error(error: GraphError | ValidationError) -> tuple[str, str]:
    """The message and `extensions.code` of a graph store or validation error."""
    if isinstance(error, GraphError):
        code = next((CODE_OF_GRAPH_ERROR[kind] for kind in type(error).__mro__ if kind in CODE_OF_GRAPH_ERROR), None)
        return error.message, code or "BAD_USER_INPUT"
    return describe_invalid_fields(error, rename=camel_case), "BAD_USER_INPUT"


def as_graphql_error(error: GraphError | ValidationError) -> GraphQLError:
    return user_error(*describe_domain_error(error))


class ReadOnlyTokens(SchemaExtension):
    """A read-only token (TRACKING_READ_TOKENS) may run queries and subscriptions, not mutations."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if self.execution_context.operation_type is OperationType.MUTATION and not getattr(context, "can_write", False):
            caller = getattr(context, "caller", None)
            bearer = caller is not None and caller.issuer is not None  # a JWT's scope, not a token's setting
            message = read_only_bearer().message if bearer else read_only_refusal(caller)
            raise GraphQLError(message, extensions={"code": "FORBIDDEN"})
        yield


RATE_LIMITED = "RATE_LIMITED"
"""The code of a request past its caller's rate (over HTTP a 429, with Retry-After)."""


class RatesOverWebSocket(SchemaExtension):
    """A query or mutation sent over a WebSocket counts against its caller's rate (web.rate_limits) as one sent
    over HTTP does (graphql_schema.router counts those before anything runs): past it, the error RATE_LIMITED
    with `retryAfter` (seconds), nothing run. Subscriptions are bounded by how many a caller holds open
    (TRACKING_SUBSCRIPTIONS_PER_CALLER) and how many distinct selections among them
    (TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER) instead, so a view that opens several at once is not refused."""

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        limits, caller = getattr(context, "caller_limits", None), getattr(context, "caller", None)
        counted = self.execution_context.operation_type is not OperationType.SUBSCRIPTION
        if counted and getattr(context, "over_websocket", False) and limits is not None and caller is not None:
            limited = await limits.refusal(caller)
            if limited is not None:
                extensions = {"code": RATE_LIMITED, "retryAfter": limited.retry_after_s}
                raise GraphQLError(limited.message, extensions=extensions)
        yield


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent as an HTTP request (GraphQL over HTTP carries queries and mutations) is a request
    error naming where subscriptions are served, not an internal one."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if self.execution_context.operation_type is OperationType.SUBSCRIPTION and not getattr(
            context, "over_websocket", True
        ):
            raise GraphQLError(SUBSCRIPTION_OVER_HTTP_MESSAGE, extensions={"code": "BAD_REQUEST"})
        yield


SUBSCRIPTION_OVER_HTTP_MESSAGE = (
    "subscriptions are served over WebSocket at /graphql (graphql-transport-ws or graphql-ws), not over HTTP"
)


def document_order(error: GraphQLError) -> tuple[int, int, str]:
    """Where an error stands in the answer's order: by its place in the document, then its path. Fields that
    fail together (aliases awaiting one shared read) fail in whatever order their waits end: sorted, an answer's
    errors are the same from run to run and on both paths (graphql_schema.compiled)."""
    line, column = (error.locations[0].line, error.locations[0].column) if error.locations else (0, 0)
    return line, column, "/".join(str(part) for part in error.path or ())


def _with_code(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(message, error.nodes, error.source, error.positions, error.path, None, {"code": code})


class CodedErrors(MaskErrors):
    """The one place GraphQL errors get their `extensions.code`: graph store and validation errors by their
    type; a request GraphQL itself refused (syntax, validation, a bound, a variable a scalar would not parse)
    as GRAPHQL_PARSE_FAILED / GRAPHQL_VALIDATION_FAILED / BAD_USER_INPUT, an operation that cannot be determined
    as OPERATION_RESOLUTION_FAILURE, one the transport does not carry as BAD_REQUEST; codes set are kept. Anything
    else is an internal error: logged with its request id and answered "internal server error"."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _: True, error_message=INTERNAL_MESSAGE)

    def _process_result(self, result: object) -> None:
        # MaskErrors's check is an isinstance of a runtime-checkable Protocol, slow and run on every streamed
        # result (each event of each subscription): a result without errors skips it.
        if getattr(result, "errors", None):
            super()._process_result(result)
            errors: list[GraphQLError] = result.errors  # type: ignore[attr-defined]
            execution = self.execution_context
            if execution.graphql_document is not None:
                graphql_schema = execution.schema._schema  # the graphql-core schema Strawberry executes with
                data = getattr(result, "data", None)
                errors = errors_in_answer(
                    errors, data, graphql_schema, execution.graphql_document, execution.operation_name
                )
            result.errors = sorted(errors, key=document_order)  # type: ignore[attr-defined]

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        """MaskErrors hands every error here (`should_mask_error` says yes to all); only the unexpected ones are
        masked. MongoDB unavailable in a field of a mutation's result (its `nexts`, say) is no refusal: the
        mutation field resolved, so its change was committed; it is ChangeUnread, not UNAVAILABLE (which says
        nothing changed)."""
        if (
            isinstance(error.original_error, StorageUnavailable)
            and error.path is not None  # an error of execution: its document parsed, its operation known
            and len(error.path) > 1
            and self.execution_context.operation_type is OperationType.MUTATION
        ):
            return _with_code(error, *describe_domain_error(ChangeUnread(f"what {error.path[0]} changed")))
        return coded_error(error)


LIBRARY_BOUNDS = (
    ("exceeds maximum operation depth of", "TRACKING_GRAPHQL_MAX_DEPTH"),  # Strawberry's QueryDepthLimiter
    ("tokens. Parsing aborted.", "TRACKING_GRAPHQL_MAX_TOKENS"),  # graphql-core's parser, under MaxTokensLimiter
)
"""The refusals of bounds the libraries enforce, by what their message says, and the setting each bound is."""


def _naming_the_setting(message: str) -> str:
    """A library's refusal of a bound with the setting that bound is, as the gateway's own refusals name theirs."""
    for says, setting in LIBRARY_BOUNDS:
        if says in message and setting not in message:
            return f"{message} ({setting})"
    return message


def with_codes(errors: list[GraphQLError] | None) -> list[GraphQLError] | None:
    """`errors`, each with a code: those without one went round CodedErrors (an exception out of a hook
    before execution, say a RecursionError in a validation rule's constructor, ends Strawberry's operation
    hooks early: no extension sees its error) and get theirs here, by the same rule."""
    if not errors:
        return errors
    return [error if error.extensions and "code" in error.extensions else coded_error(error) for error in errors]


def coded_error(error: GraphQLError) -> GraphQLError:
    """The error with its `extensions.code`, as CodedErrors says; an unexpected one logged (with its request
    id) and masked as "internal server error"."""
    original = error.original_error
    if isinstance(original, GraphError | ValidationError):
        return _with_code(error, *describe_domain_error(original))
    if error.extensions and "code" in error.extensions:
        return error
    if isinstance(original, CannotGetOperationTypeError):  # over WebSocket; HTTP answers it in the router
        return _with_code(error, error.message, OPERATION_RESOLUTION_FAILURE)
    if isinstance(original, InvalidOperationTypeError | MissingQueryError):
        return _with_code(error, error.message, "BAD_REQUEST")
    if original is None:
        parsing = error.message.startswith("Syntax Error")
        code = "GRAPHQL_PARSE_FAILED" if parsing else "GRAPHQL_VALIDATION_FAILED"
        return _with_code(error, _naming_the_setting(error.message), code)
    if error.path is None and error.nodes and isinstance(original, ValueError | TypeError | GraphQLError):
        # A variable a scalar would not parse names its definition; an exception out of a subscription's event
        # stream names no node (nor path): that one is a bug.
        return _with_code(error, error.message, "BAD_USER_INPUT")
    where = f"resolver at {error.path}" if error.path is not None else "request, before execution"
    log.error("unhandled error in GraphQL %s", where, exc_info=original)
    return _with_code(error, INTERNAL_MESSAGE, "INTERNAL_SERVER_ERROR")
