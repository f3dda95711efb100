"""The library internals the gateway hooks into, pinned: each test names a method the gateway overrides or an
attribute it reads, as the pinned library version has it. An upgrade that renames or reshapes one fails here,
by name, instead of quietly changing how the gateway answers; then update the hook and this test together.

Public API is used where Strawberry 0.341 offers it (MaskErrors' `should_mask_error` and `anonymise_error`, the
schema's `process_errors`, the router's `process_result`, `decode_json`, `on_ws_connect`,
`render_graphql_ide`); what is left is pinned here."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import strawberry
import uvicorn
from strawberry.dataloader import DataLoader
from strawberry.extensions import MaskErrors
from strawberry.fastapi import GraphQLRouter
from strawberry.http.async_base_view import AsyncBaseHTTPView
from strawberry.http.base import BaseView
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from gateway.cli import GatewayServer
from gateway.server import BoundedHeadProtocol
from gateway.websocket_protocol import AbortingWebSocketProtocol
from graphql_schema.errors import CodedErrors
from graphql_schema.router import TrackingGraphQLRouter
from graphql_schema.schema import TrackingSchema
from graphql_schema.websocket_handlers import LegacyWSHandler, TransportWSHandler


def assigns(source: str, attribute: str) -> bool:
    """Whether `source` sets `self.<attribute>` (annotated or not)."""
    return re.search(rf"self\.{attribute}\b(: [^=\n]+)? =", source) is not None


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_schema_overrides_keep_strawberrys_signatures():
    """TrackingSchema.execute and .stream pass their arguments on by position: the order must be Strawberry's
    (the overrides spell it out, so a reordered or renamed parameter upstream fails here)."""
    for name in ("execute", "stream", "process_errors"):
        assert parameters(getattr(TrackingSchema, name)) == parameters(getattr(strawberry.Schema, name)), name


def test_mask_errors_hands_every_masked_error_to_anonymise_error():
    """CodedErrors codes (or masks) each error in `anonymise_error`, with `should_mask_error` saying yes to all."""
    assert parameters(MaskErrors.__init__) == ["self", "should_mask_error", "error_message"]
    assert parameters(MaskErrors.anonymise_error) == parameters(CodedErrors.anonymise_error) == ["self", "error"]
    assert "self.anonymise_error(error)" in inspect.getsource(MaskErrors)
    assert "self.should_mask_error(error)" in inspect.getsource(MaskErrors)


def test_the_router_hooks_keep_strawberrys_signatures():
    for name in ("run", "process_result", "decode_json", "on_ws_connect", "render_graphql_ide"):
        assert parameters(getattr(TrackingGraphQLRouter, name)) == parameters(getattr(GraphQLRouter, name)), name
    # A body that is no JSON reaches the router as Strawberry's HTTPException caused by the JSONDecodeError,
    # whose message the router adds (graphql_schema.router._request_error).
    parse_json = inspect.getsource(BaseView.parse_json)
    assert "self.decode_json(data)" in parse_json and "except json.JSONDecodeError as e" in parse_json
    assert "from e" in parse_json
    assert "graphql_ws_handler_class" in vars(AsyncBaseHTTPView)
    assert "graphql_transport_ws_handler_class" in vars(AsyncBaseHTTPView)


def test_the_graphql_ws_handler_hooks_exist_as_used():
    """LegacyWSHandler refuses a wrong token in `handle_connection_init` and runs queries in
    `handle_async_results`, with the handler's own attributes."""
    for name in ("handle_connection_init", "handle_async_results"):
        assert parameters(getattr(LegacyWSHandler, name)) == parameters(getattr(BaseGraphQLWSHandler, name)), name
    init = inspect.getsource(BaseGraphQLWSHandler.__init__)
    for attribute in ("websocket", "context", "schema", "root_value", "subscriptions", "tasks"):
        assert assigns(init, attribute), attribute
    assert callable(BaseGraphQLWSHandler.send_message) and callable(BaseGraphQLWSHandler.send_data_message)


def test_the_graphql_transport_ws_handler_hook_exists_as_used():
    """TransportWSHandler refuses tokens that disagree in `handle_connection_init`, closing `websocket` and
    reading `context` before Strawberry's own handling."""
    name = "handle_connection_init"
    assert parameters(getattr(TransportWSHandler, name)) == parameters(getattr(BaseGraphQLTransportWSHandler, name))
    init = inspect.getsource(BaseGraphQLTransportWSHandler.__init__)
    for attribute in ("websocket", "context"):
        assert assigns(init, attribute), attribute


def test_the_dataloader_cache_is_readable_and_primable():
    """graphql_schema.context reads `cache_map` (tasks already fetched) and primes it with `force`."""
    loader = DataLoader[int, int](load_fn=lambda keys: None)  # type: ignore[arg-type, return-value]
    assert callable(loader.cache_map.get)
    assert "force" in parameters(DataLoader.prime)


def test_uvicorn_hooks_exist_as_used():
    """GatewayServer clears uvicorn's `_captured_signals` (so uvicorn does not re-raise the stopping signal before
    the gateway closed MongoDB); BoundedHeadProtocol overrides httptools callbacks and reads the protocol's
    connection state."""
    server = GatewayServer(uvicorn.Config(app="gateway.app:create_app"))
    assert isinstance(server._captured_signals, list)
    assert "capture_signals" in vars(uvicorn.Server)
    overridden = [
        name for name, value in vars(BoundedHeadProtocol).items() if callable(value) and not name.startswith("_")
    ]
    for name in overridden:
        assert parameters(getattr(BoundedHeadProtocol, name)) == parameters(getattr(HttpToolsProtocol, name)), name
    source = inspect.getsource(HttpToolsProtocol)
    for attribute in ("parser", "pipeline", "cycle", "transport", "loop", "url"):
        assert assigns(source, attribute), attribute
    ours = {name for name in vars(BoundedHeadProtocol) if name.startswith("_") and not name.startswith("__")}
    assert not ours & set(dir(HttpToolsProtocol)), "a private name of the gateway's would shadow uvicorn's"


def test_uvicorn_websocket_hooks_exist_as_used():
    """AbortingWebSocketProtocol extends the keepalive timeout and connection_lost of uvicorn's sans-I/O
    WebSocket protocol (the one "auto" picks with websockets installed) and reads its connection state."""
    for name in ("keepalive_timeout", "connection_lost"):
        assert name in vars(WebSocketsSansIOProtocol), name
        assert parameters(getattr(AbortingWebSocketProtocol, name)) == parameters(
            getattr(WebSocketsSansIOProtocol, name)
        ), name
    source = inspect.getsource(WebSocketsSansIOProtocol)
    for attribute in ("disconnected", "ping_timeout", "close_timeout", "transport", "loop"):
        assert assigns(source, attribute), attribute
    ours = {name for name in vars(AbortingWebSocketProtocol) if name.startswith("_") and not name.startswith("__")}
    assert not ours & set(dir(WebSocketsSansIOProtocol)), "a private name of the gateway's would shadow uvicorn's"
