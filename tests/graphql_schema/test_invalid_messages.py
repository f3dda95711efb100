"""A WebSocket message its protocol's handler cannot read (not an object, an `id` that is no string, a `payload`
or `query` of the wrong type) closes the connection with 4400 and the reason, and logs nothing: it is the
client's mistake, not the gateway's. Before, such messages dropped the connection without a close frame and
logged tracebacks, or ran the operation into an INTERNAL_SERVER_ERROR."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.helpers import START_MESSAGE, acknowledged, gateway_app, served

QUERY = "subscription { taskEvents { kind } }"
INVALID = [
    ([1, 2], "JSON object"),
    ({"type": "START", "id": {"a": 1}, "payload": {"query": QUERY}}, "`id`"),
    ({"type": "START", "id": "1", "payload": "x"}, "`payload`"),
    ({"type": "START", "id": "1", "payload": {"query": 123}}, "`payload.query`"),
    ({"type": "START", "id": "1", "payload": {"query": QUERY, "variables": "x"}}, "`payload.variables`"),
]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize(("message", "named"), INVALID, ids=["list", "id", "payload", "query", "variables"])
async def test_a_message_the_handler_cannot_read_closes_with_4400_and_logs_nothing(
    store: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture, protocol: str, message: Any, named: str
) -> None:
    caplog.set_level(logging.WARNING)
    if isinstance(message, dict):
        message = {**message, "type": START_MESSAGE[protocol]}
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port, acknowledged(port, protocol) as ws:
        await ws.send(json.dumps(message))
        await asyncio.wait_for(ws.wait_closed(), 30)
    # 1006 (no close frame) was what the client saw before.
    assert ws.close_code == 4400 and named in (ws.close_reason or ""), (ws.close_code, ws.close_reason)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]


async def test_a_message_past_the_websocket_bound_closes_the_connection_with_1009(store: Any, tmp_path: Any) -> None:
    """A subscription holds its start message's document and variables for its life: a message of megabytes
    (variables of 15 MB held by each of a hundred subscriptions per connection) is refused as the WebSocket
    protocol refuses a message too big."""
    app, settings = gateway_app(store, tmp_path, websocket_max_message_bytes=64 * 1024)
    async with served(app, settings) as port, acknowledged(port, "graphql-transport-ws") as ws:
        payload = {
            "query": "subscription($j: String) { taskEvents(jobId: $j) { kind } }",
            "variables": {"j": "x" * 70_000},
        }
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        await asyncio.wait_for(ws.wait_closed(), 30)
    assert ws.close_code == 1009, (ws.close_code, ws.close_reason)


async def test_graphql_ws_answers_a_message_of_an_unknown_type_with_an_error_and_goes_on(
    store: Any, tmp_path: Any
) -> None:
    """graphql-ws's reference server answers a type its clients do not send with an `error` message (with the
    message's id) and keeps the connection; silence left a client waiting on an operation nobody would run."""
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port, acknowledged(port, "graphql-ws") as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "7", "payload": {"query": "{ doneStatuses }"}}))
        error = await _next_not_keep_alive(ws)
        await ws.send(json.dumps({"type": "start", "id": "8", "payload": {"query": "{ doneStatuses }"}}))
        answer = await _next_not_keep_alive(ws)
    assert error["type"] == "error" and error["id"] == "7", error
    assert "unknown message type 'subscribe'" in error["payload"]["message"], error
    assert answer["type"] == "data" and answer["id"] == "8" and "doneStatuses" in answer["payload"]["data"], answer


async def _next_not_keep_alive(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message["type"] != "ka":
            return dict(message)
