"""GraphQL's part of /metrics: operations by name and outcome, and the subscriptions open right now."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextvars import ContextVar

from prometheus_client import Counter, Gauge
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from graphql_schema.operation_names import executed_operation, recorded_name

OPERATIONS = Counter(
    "tracking_graphql_operations_total", "GraphQL operations, by operation name and outcome.", ["operation", "outcome"]
)
COMPILED = Counter(
    "tracking_graphql_compiled_total",
    "GraphQL queries answered by the compiled path (compiled), with it on field by field (generic), or failed in it "
    "(failed: an internal error, logged).",
    ["path"],
)
OPEN_SUBSCRIPTIONS = Gauge("tracking_graphql_open_subscriptions", "Subscriptions being served right now.")
SUBSCRIPTION_EXECUTIONS = Counter(
    "tracking_subscription_event_executions_total",
    "Subscription selections run on an event (executed), or answered by the run of another subscription with the "
    "same selection, variables and audience (shared).",
    ["outcome"],
)
SUBSCRIPTION_ENCODINGS = Counter(
    "tracking_subscription_event_encodings_total",
    "graphql-transport-ws `next` payloads encoded to JSON (encoded), or sent as the text encoded for another "
    "subscription of the same payload (shared).",
    ["outcome"],
)
OPERATION_FAILED: ContextVar[bool] = ContextVar("operation_failed", default=False)
"""Set in an operation's task when an answer of it could not be sent (a bug, not the peer gone): its stream is
then closed by the protocol handler as one the client ended would be, and is counted as an error."""
MAX_NAMES = 100
"""Operation names are the clients' choice: past this many distinct ones, the rest count as "other" (each one as
graphql_schema.operation_names records it: defined by its document, cut)."""
_seen_names: set[str] = set()


def _label(name: str | None) -> str:
    if name is None:
        return "anonymous"
    if name in _seen_names or len(_seen_names) < MAX_NAMES:
        _seen_names.add(name)
        return name
    return "other"


def _closed_outcome(context: ExecutionContext) -> str | None:
    """The outcome of an operation whose stream was closed before its end (None: none to count)."""
    if isinstance(context.result, PreExecutionError):
        # Refused before it ran (invalid, or no operation to run could be determined): a WebSocket handler
        # stops reading after that answer.
        return "error"
    try:
        subscription = context.operation_type is OperationType.SUBSCRIPTION
    except RuntimeError:  # no operation to run: nothing ran
        return None
    if not subscription:
        return None  # a query or mutation cancelled midway has no outcome
    # A subscription the client ended (complete or stop, or its socket closed) ended, it did not fail; unless an
    # answer of it could not be sent.
    return "error" if OPERATION_FAILED.get() else "ok"


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except (GeneratorExit, asyncio.CancelledError):
            outcome = _closed_outcome(self.execution_context)
            if outcome is not None:
                self._count(outcome)
            raise
        except Exception:
            # Raised through the operation (a refusal before execution, a limit's error, no operation to run):
            # answered as an error.
            self._count("error")
            raise
        result = self.execution_context.result
        self._count("error" if result is None or getattr(result, "errors", None) else "ok")

    def _count(self, outcome: str) -> None:
        OPERATIONS.labels(_label(recorded_name(executed_operation(self.execution_context))), outcome).inc()
