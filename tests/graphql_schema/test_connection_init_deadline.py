"""A WebSocket connection that never sends its connection_init is closed with 4408 after the router's deadline,
over graphql-ws as over graphql-transport-ws; one that sent it stays open past the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from uvicorn.protocols.utils import ClientDisconnected
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graphql_schema import router
from graphql_schema.websocket_handlers import LegacyWSHandler, TransportWSHandler
from models import GraphStore
from tests.helpers import AUTH, START_MESSAGE, gateway_app, served
from web.auth import Caller, Callers, Credential

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
DEADLINE = timedelta(seconds=0.5)
CLOSE_WITHIN_S = 60
"""The longest the test waits for the close: the deadline on a loaded machine, with room."""


@contextlib.asynccontextmanager
async def connected(
    store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> AsyncIterator[ClientConnection]:
    """A socket speaking `protocol` to a gateway on `store` whose connection_init deadline is DEADLINE."""
    monkeypatch.setattr(router, "CONNECTION_INIT_WAIT", DEADLINE)
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol(protocol)]) as ws,
    ):
        yield ws


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_that_never_initialises_is_closed_with_4408(
    store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    async with connected(store, tmp_path, monkeypatch, protocol) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), CLOSE_WITHIN_S)
        assert ws.close_code == 4408
        assert ws.close_reason == "Connection initialisation timeout"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_initialised_connection_outlives_the_deadline(
    store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    async with connected(store, tmp_path, monkeypatch, protocol) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        # Past the deadline (what is asserted is that nothing happens, so only a wait can show it) ...
        await asyncio.sleep(DEADLINE.total_seconds() * 3)
        # ... the connection still answers a query.
        await ws.send(json.dumps({"id": "1", "type": START_MESSAGE[protocol], "payload": {"query": "{ __typename }"}}))
        assert json.loads(await ws.recv())["payload"]["data"] == {"__typename": "Query"}
        assert ws.close_code is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_init_in_time_is_not_timed_out_while_its_token_is_checked(
    store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    """A connection_init that came before the deadline, whose token is still being checked (a slow token source,
    an issuer's keys being fetched) when the deadline passes, is answered, not closed with 4408."""
    checking, checked = asyncio.Event(), asyncio.Event()
    resolve = Callers.resolve

    async def slow_resolve(self: Callers, credential: Credential | None) -> Caller | None:
        if credential is not None:  # the payload's token; the upgrade request carries none
            checking.set()
            await checked.wait()
        return await resolve(self, credential)

    monkeypatch.setattr(Callers, "resolve", slow_resolve)
    async with connected(store, tmp_path, monkeypatch, protocol) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        await asyncio.wait_for(checking.wait(), CLOSE_WITHIN_S)
        # Past the deadline while the token is checked (what is asserted is that no close comes, so only a
        # wait can show it) ...
        await asyncio.sleep(DEADLINE.total_seconds() * 3)
        checked.set()
        # ... the connection is acknowledged.
        assert json.loads(await asyncio.wait_for(ws.recv(), CLOSE_WITHIN_S))["type"] == "connection_ack"
        assert ws.close_code is None


class _View:
    """What the handlers ask of the router here: its deadline, and JSON."""

    connection_init_wait_timeout = DEADLINE

    def decode_json(self, data: str | bytes) -> object:
        return json.loads(data)

    def encode_json(self, data: object) -> str:
        return json.dumps(data)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_peer_gone_as_the_deadline_passes_is_no_error(protocol: str, caplog: pytest.LogCaptureFixture) -> None:
    """The deadline's close finds the peer gone (its close or its TCP end came, and the connection is lost, but the
    handler has not read that yet: uvicorn refuses the send, Starlette raises WebSocketDisconnect 1006): the
    connection ends as any other whose peer left, with no error logged or left in a task."""
    gone, close_sent = asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, object]:
        await gone.wait()
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: MutableMapping[str, Any]) -> None:
        assert message["type"] == "websocket.close"
        close_sent.set()
        raise ClientDisconnected  # as uvicorn's, once the connection is lost

    websocket = WebSocket({"type": "websocket", "path": "/graphql", "headers": []}, receive, send)
    websocket.client_state = websocket.application_state = WebSocketState.CONNECTED
    view = cast("Any", _View())
    adapter = ASGIWebSocketAdapter(view, websocket, websocket)
    handler = (
        TransportWSHandler(view, adapter, cast("Any", None), None, cast("Any", None), DEADLINE)
        if protocol == "graphql-transport-ws"
        else LegacyWSHandler(view, adapter, cast("Any", None), None, cast("Any", None), False, None)
    )
    unretrieved: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    handler_before = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        handling = asyncio.create_task(handler.handle())
        await asyncio.wait_for(close_sent.wait(), CLOSE_WITHIN_S)
        gone.set()
        await asyncio.wait_for(handling, CLOSE_WITHIN_S)
        del handler, handling
        gc.collect()  # a task whose exception nobody retrieved reports it when it is collected
    finally:
        loop.set_exception_handler(handler_before)
    assert unretrieved == []
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
