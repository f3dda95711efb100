"""What the app's lifespan hands every request, and the one typed way to read it."""

from __future__ import annotations

from typing import TypedDict, cast

from opentelemetry.trace import Tracer
from starlette.requests import HTTPConnection

from gateway.auth import TokenRegistry
from gateway.backend import Backend
from gateway.settings import Settings
from models import GraphStore


class GatewayState(TypedDict):
    """What the lifespan yields: Starlette copies it into every request's scope (`scope["state"]`, which ASGI
    middleware reads too). The app keeps nothing else: no `app.state`."""

    backend: Backend
    store: GraphStore
    tokens: TokenRegistry
    settings: Settings
    tracer: Tracer | None
    """Where the front ends' spans go (GraphQL operations); None when this app traces nothing."""


def gateway_state(connection: HTTPConnection) -> GatewayState:
    """The lifespan's state as a request or WebSocket handler sees it, typed (`request.state.x` is `Any`)."""
    return cast(GatewayState, connection.scope["state"])
