"""A WebSocket connection that never sends its connection_init is closed with 4408 after the router's deadline,
over graphql-ws as over graphql-transport-ws; one that sent it stays open past the deadline."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graphql_schema import router
from models import GraphStore
from tests.helpers import AUTH, gateway_app, served

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
DEADLINE = timedelta(seconds=0.5)
CLOSE_WITHIN_S = 60
"""The longest the test waits for the close: the deadline on a loaded machine, with room."""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_that_never_initialises_is_closed_with_4408(
    store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setattr(router, "CONNECTION_INIT_WAIT", DEADLINE)
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port:
        async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol(protocol)]) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), CLOSE_WITHIN_S)
            assert ws.close_code == 4408
            assert ws.close_reason == "Connection initialisation timeout"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_initialised_connection_outlives_the_deadline(
    store: GraphStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setattr(router, "CONNECTION_INIT_WAIT", DEADLINE)
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port:
        async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol(protocol)]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            # Past the deadline (what is asserted is that nothing happens, so only a wait can show it) ...
            await asyncio.sleep(DEADLINE.total_seconds() * 3)
            # ... the connection still answers a query.
            start = "subscribe" if protocol == "graphql-transport-ws" else "start"
            await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": "{ __typename }"}}))
            assert json.loads(await ws.recv())["payload"]["data"] == {"__typename": "Query"}
            assert ws.close_code is None
