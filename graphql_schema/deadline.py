"""One deadline per GraphQL operation: every store call a query or mutation makes (its DataLoader batches, the
compiled path's reads) shares TRACKING_MONGODB_TIMEOUT_MS, counted from when it starts to execute, rather than
each call having the whole of it (a query of ten sequential reads could otherwise take ten deadlines). Past it,
the fields still to read fail at once and the answer holds what was read before: DEADLINE_EXCEEDED when MongoDB
answered all it was asked (the operation asks for too much), UNAVAILABLE once MongoDB failed one of its reads."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_schema.context import Context
from models.deadline import operation_deadline


class OperationDeadline(SchemaExtension):
    """Runs a query's or mutation's execution under one deadline (models.deadline.operation_deadline); a
    subscription's stream lives as long as its client, each read of it bounded on its own."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        if isinstance(context, Context) and execution.operation_type is not OperationType.SUBSCRIPTION:
            with operation_deadline(context.store.timeout_s):
                yield
            return
        yield
