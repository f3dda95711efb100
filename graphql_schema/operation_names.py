"""The name an operation is recorded under, in its span and on /metrics: only a name its document defines for the
operation it runs, cut to OPERATION_NAME_MOST characters. The request's `operationName` is the client's text (any
length, any JSON value over a WebSocket); recorded as it is, it would make every span and metric series as large
as the client likes."""

from __future__ import annotations

from graphql import OperationDefinitionNode, get_operation_ast
from strawberry.types import ExecutionContext

from graphql_schema.rules import REQUESTED_OPERATION

OPERATION_NAME_MOST = 100
"""Characters of an operation's name kept where it is recorded: a document may name its operation with any
number of characters."""


def executed_operation(context: ExecutionContext) -> OperationDefinitionNode | None:
    """The operation the document runs: the one `operationName` names, or its only one. None when there is none to
    run (no document, a name the document does not define or that is not a string, several and no name)."""
    document = context.graphql_document
    name: object = REQUESTED_OPERATION.get()  # what the caller sent (Strawberry's falls back to the first operation)
    if document is None or not (name is None or isinstance(name, str)):
        return None
    return get_operation_ast(document, name)


def recorded_name(operation: OperationDefinitionNode | None) -> str | None:
    """The operation's name as it is recorded (None: anonymous, or no operation to run)."""
    if operation is None or operation.name is None:
        return None
    return operation.name.value[:OPERATION_NAME_MOST]
