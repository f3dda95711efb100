"""What a WebSocket message must hold before a protocol handler reads it. Strawberry's handlers index messages as
the protocols describe them: a message that is not an object, an `id` that is not a string, a `payload` that is
not an object or a `query` that is not text raised inside them (KeyError, TypeError), which dropped the whole
connection without a close frame (its other subscriptions with it) and logged tracebacks, or ran the operation
into a server error. Such a message is the client's mistake: the connection is closed with 4400 and the reason
(graphql-transport-ws's close for an invalid message, used for graphql-ws too), and nothing is logged."""

from __future__ import annotations

INVALID_MESSAGE_CLOSE_CODE = 4400

_WITH_ID = {"graphql-transport-ws": frozenset({"subscribe", "complete"}), "graphql-ws": frozenset({"start", "stop"})}
"""The message types of each protocol that name an operation by `id`."""
_STARTS = frozenset({"subscribe", "start"})
GRAPHQL_WS_CLIENT_TYPES = ("connection_init", "start", "stop", "connection_terminate")
"""What a graphql-ws client sends; the protocol answers any other type with an `error` message and goes on."""


def message_problem(protocol: str, message: object) -> str | None:
    """Why `message` (decoded JSON) is no message of `protocol` the handler can read; None when it is one. Types
    the protocol does not know are left to the handler (graphql-transport-ws closes with 4400, graphql-ws answers
    `unknown_type_error`)."""
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "a message's `type` must be a string"
    if kind in _WITH_ID[protocol] and not isinstance(message.get("id"), str):
        return f"a {kind} message's `id` must be a string"
    payload = message.get("payload")
    if kind in _STARTS:
        return _start_problem(kind, payload)
    if payload is not None and not isinstance(payload, dict):
        return f"a {kind} message's `payload` must be an object or null"
    return None


def _start_problem(kind: str, payload: object) -> str | None:
    if not isinstance(payload, dict):
        return f"a {kind} message's `payload` must be an object"
    if not isinstance(payload.get("query"), str):
        return f"a {kind} message's `payload.query` must be a string"
    for field, expected in (("variables", dict), ("extensions", dict), ("operationName", str)):
        value = payload.get(field)
        if value is not None and not isinstance(value, expected):
            shown = "an object" if expected is dict else "a string"
            return f"a {kind} message's `payload.{field}` must be {shown} or null"
    return None


def unknown_type_error(message: dict[str, object]) -> dict[str, object] | None:
    """The graphql-ws `error` message answering a message of a type its clients do not send (its reference server
    answers one and keeps the connection), with the message's `id` when it has one; None for a known type."""
    kind = message["type"]
    if kind in GRAPHQL_WS_CLIENT_TYPES:
        return None
    error: dict[str, object] = {
        "type": "error",
        "payload": {"message": f"unknown message type {kind!r}: graphql-ws knows {', '.join(GRAPHQL_WS_CLIENT_TYPES)}"},
    }
    if isinstance(message.get("id"), str):
        error["id"] = message["id"]
    return error
