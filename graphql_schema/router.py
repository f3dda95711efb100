"""The /graphql endpoint: HTTP (with GraphiQL in a browser) and WebSocket (graphql-transport-ws)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from graphql_schema.context import Context
from graphql_schema.schema import build_schema

TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name


class TrackingGraphQLRouter(GraphQLRouter[Context, None]):
    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A WebSocket may carry the token as a header or in the connection_init payload."""
        if context.authenticated:
            return await super().on_ws_connect(context)
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        presented = params.get(TOKEN_HEADER) or params.get(TOKEN_HEADER.lower()) or params.get("token")
        if isinstance(presented, str) and context.tokens.accepts(presented):
            context.authenticated = True
            return await super().on_ws_connect(context)
        raise ConnectionRejectionError({"message": f"missing or unknown {TOKEN_HEADER}"})


def _asks_for_graphiql(request: Request) -> bool:
    """A browser opening /graphql gets the GraphiQL page without a token (no operation runs); the token goes
    in GraphiQL's headers pane. Mirrors Strawberry's own test for rendering the IDE."""
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET" and "query" not in request.query_params and ("text/html" in accept or "*/*" in accept)
    )


async def _context(request: Request = None, websocket: WebSocket = None) -> Context:  # type: ignore[assignment]
    connection: Any = request if request is not None else websocket
    state = connection.app.state
    authenticated = state.tokens.accepts(connection.headers.get(TOKEN_HEADER))
    if request is not None and not authenticated and not _asks_for_graphiql(request):
        raise HTTPException(403, f"missing or unknown {TOKEN_HEADER}")
    return Context(state.store, state.settings.graphql_max_traversal, authenticated, state.tokens)


def graphql_router(max_depth: int, max_aliases: int, max_tokens: int) -> GraphQLRouter:
    return TrackingGraphQLRouter(
        build_schema(max_depth, max_aliases, max_tokens),
        path="/graphql",
        graphql_ide="graphiql",
        context_getter=_context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
    )
