"""The /graphql endpoint: HTTP (with GraphiQL in a browser) and WebSocket (graphql-transport-ws, graphql-ws)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from cross_web import HTTPException as StrawberryHTTPException
from fastapi import HTTPException, Request, WebSocket
from fastapi.responses import HTMLResponse
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ConnectionInitMessage
from strawberry.types.unset import UnsetType

from graphql_schema.context import Context
from graphql_schema.schema import build_schema
from models import InvalidOperation, Limits

TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name
REJECTED_TOKEN_CLOSE_CODE = 4403


class _RefusedJSON(json.JSONDecodeError):
    """A body or message that parses but is too deep or too long; its message names the limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)
        self.msg = message


def _presented_token(params: object) -> str | None:
    """The token of a WebSocket's connection_init payload."""
    if not isinstance(params, dict):
        return None
    presented = params.get(TOKEN_HEADER) or params.get(TOKEN_HEADER.lower()) or params.get("token")
    return presented if isinstance(presented, str) else None


class _LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The older graphql-ws protocol closes a rejected connection with 1011 (internal error); a wrong token is
    no server error, so it is refused here first with the 4403 graphql-transport-ws uses."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        context = self.context
        if not context.authenticated and not context.tokens.accepts(_presented_token(message.get("payload"))):
            await self.send_message({"type": "connection_error", "payload": {"message": _REJECTION}})
            await self.websocket.close(code=REJECTED_TOKEN_CLOSE_CODE, reason=_REJECTION)
            return
        await super().handle_connection_init(message)


_REJECTION = f"missing or unknown {TOKEN_HEADER}"


GRAPHIQL_PAGE = (Path(__file__).parent / "graphiql.html").read_text()
"""GraphiQL on assets the gateway serves itself (no CDN), asking for the token once."""


class TrackingGraphQLRouter(GraphQLRouter[Context, None]):
    graphql_ws_handler_class = _LegacyWSHandler

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(GRAPHIQL_PAGE)

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits

    def decode_json(self, data: str | bytes) -> object:
        """orjson refuses invalid UTF-8, lone surrogates and numbers beyond a double with a JSONDecodeError (the
        standard library raises UnicodeDecodeError, ValueError or RecursionError); the limits bound the rest."""
        decoded = orjson.loads(data)
        try:
            self.limits.refuse_oversized_document(decoded, "request")
        except InvalidOperation as error:
            raise _RefusedJSON(error.message) from None
        return decoded

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except json.JSONDecodeError as error:
            raise StrawberryHTTPException(400, f"Unable to parse request body as JSON: {error.msg}") from error

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A WebSocket may carry the token as a header or in the connection_init payload."""
        if context.authenticated:
            return await super().on_ws_connect(context)
        access = context.tokens.access(_presented_token(context.connection_params))
        if access is not None:
            context.authenticated, context.can_write = True, access.value == "write"
            return await super().on_ws_connect(context)
        raise ConnectionRejectionError({"message": _REJECTION})


def _asks_for_graphiql(request: Request) -> bool:
    """A browser opening /graphql gets the GraphiQL page without a token (no operation runs); the token goes
    in GraphiQL's headers pane. Mirrors Strawberry's own test for rendering the IDE."""
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET" and "query" not in request.query_params and ("text/html" in accept or "*/*" in accept)
    )


async def _context(request: Request = None, websocket: WebSocket = None) -> Context:  # type: ignore[assignment]
    connection: Any = request if request is not None else websocket
    state = connection.state
    access = state.tokens.access(connection.headers.get(TOKEN_HEADER))
    authenticated = access is not None
    if request is not None and not authenticated and not _asks_for_graphiql(request):
        raise HTTPException(403, _REJECTION)
    settings = state.settings
    context = Context(
        state.store,
        settings.graphql_max_traversal,
        authenticated,
        state.tokens,
        settings.graphql_max_page,
        settings.subscription_resume_ms / 1000,
    )
    context.can_write = access is not None and access.value == "write"
    return context


def graphql_router(max_depth: int, max_aliases: int, max_tokens: int, limits: Limits) -> TrackingGraphQLRouter:
    return TrackingGraphQLRouter(
        build_schema(max_depth, max_aliases, max_tokens),
        path="/graphql",
        graphql_ide="graphiql",
        context_getter=_context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        limits=limits,
    )
