"""GraphQL's part of /metrics: operations by name and outcome, and the subscriptions open right now."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import Counter, Gauge
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

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
MAX_NAMES = 100
"""Operation names are the clients' choice: past this many distinct ones, the rest count as "other"."""
_seen_names: set[str] = set()


def _label(name: str | None) -> str:
    if name is None:
        return "anonymous"
    if name in _seen_names or len(_seen_names) < MAX_NAMES:
        _seen_names.add(name)
        return name
    return "other"


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except (GeneratorExit, asyncio.CancelledError):
            # A subscription the client ended (complete or stop, or its socket closed): ended, not failed. A
            # query or mutation cancelled midway has no outcome to count.
            if self._is_subscription():
                OPERATIONS.labels(_label(self.execution_context.operation_name), "ok").inc()
            raise
        result = self.execution_context.result
        outcome = "error" if result is None or getattr(result, "errors", None) else "ok"
        OPERATIONS.labels(_label(self.execution_context.operation_name), outcome).inc()

    def _is_subscription(self) -> bool:
        try:
            return self.execution_context.operation_type is OperationType.SUBSCRIPTION
        except RuntimeError:  # Strawberry's answer for a document whose operation cannot be told: none ran
            return False
