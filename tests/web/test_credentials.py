"""One credential per request: a repeated X-Auth-Token (even twice the same value, or values a proxy joined with a
comma) is a 400 with the front end's Error body and is never authenticated, over REST, GraphQL over HTTP and the
WebSocket upgrade; a connection_init payload whose token disagrees with the header's (or with itself) is
refused."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.types import Message
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from graphql_schema.credentials import refuse_upgrade
from tests.helpers import AUTH, TOKEN
from web.auth import RepeatedCredential

REPEATS = [
    pytest.param([TOKEN, TOKEN], id="same token twice"),
    pytest.param([TOKEN, "wrong"], id="valid then unknown"),
    pytest.param(["wrong", TOKEN], id="unknown then valid"),
    pytest.param([f"{TOKEN}, {TOKEN}"], id="joined with a comma"),
    pytest.param([f"wrong,{TOKEN}"], id="joined, valid last"),
]


@pytest.fixture
async def http(gateway_client):
    return await gateway_client(None)


def tokens(values: list[str]) -> list[tuple[str, str]]:
    return [("X-Auth-Token", value) for value in values]


@pytest.mark.parametrize("values", REPEATS)
async def test_rest_refuses_a_repeated_token_with_400_and_changes_nothing(http, raw_db, values):
    body = {"tasks": [{"id": 1}]}
    created = await http.post("/tracking/task", json=body, headers=tokens(values))
    assert created.status_code == 400, created.text
    assert created.json()["code"] == 400
    assert "X-Auth-Token" in created.json()["message"]
    assert await raw_db.tasks.count_documents({}) == 0  # never authenticated
    as_xml = await http.get("/tracking/task/1", headers=[*tokens(values), ("Accept", "application/xml")])
    assert as_xml.status_code == 400
    assert as_xml.headers["content-type"].startswith("application/xml")
    assert "<code>400</code>" in as_xml.text and "X-Auth-Token" in as_xml.text
    assert (await http.post("/tracking/task", json=body, headers=AUTH)).status_code == 200  # one token: fine


@pytest.mark.parametrize("values", REPEATS)
async def test_graphql_refuses_a_repeated_token_with_400_and_runs_nothing(http, raw_db, values):
    mutation = {"query": 'mutation { createTasks(tasks: [{id: "1"}]) { id } }'}
    for accept in ("application/json", "application/graphql-response+json"):
        response = await http.post("/graphql", json=mutation, headers=[*tokens(values), ("Accept", accept)])
        assert response.status_code == 400, response.text
        answer = response.json()
        assert "data" not in answer
        assert answer["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert "X-Auth-Token" in answer["errors"][0]["message"]
    assert await raw_db.tasks.count_documents({}) == 0
    query = await http.get("/graphql", params={"query": "{ doneStatuses }"}, headers=tokens(values))
    assert query.status_code == 400


@pytest.mark.parametrize("values", REPEATS)
async def test_a_websocket_upgrade_with_a_repeated_token_is_refused_with_400(live, values):
    for protocol in ("graphql-transport-ws", "graphql-ws"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"ws://127.0.0.1:{live}/graphql",
                subprotocols=[Subprotocol(protocol)],
                additional_headers=tokens(values),
            ):
                pass
        response = refused.value.response
        assert response.status_code == 400
        error = json.loads(response.body)["errors"][0]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "X-Auth-Token" in error["message"]


DISAGREEING = [
    pytest.param([TOKEN], {"X-Auth-Token": "other"}, id="header and payload differ"),
    pytest.param(["wrong"], {"X-Auth-Token": TOKEN}, id="unknown header, valid payload"),
    pytest.param([], {"X-Auth-Token": TOKEN, "token": "other"}, id="payload keys differ"),
]


async def closed_with(ws) -> int:
    """The close code of a socket that is to send nothing more."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest.mark.parametrize(("header", "payload"), DISAGREEING)
async def test_graphql_transport_ws_refuses_tokens_that_disagree(live, header, payload):
    url, protocols = f"ws://127.0.0.1:{live}/graphql", [Subprotocol("graphql-transport-ws")]
    async with connect(url, subprotocols=protocols, additional_headers=tokens(header)) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert await closed_with(ws) == 4400


@pytest.mark.parametrize(("header", "payload"), DISAGREEING)
async def test_legacy_graphql_ws_refuses_tokens_that_disagree(live, header, payload):
    url, protocols = f"ws://127.0.0.1:{live}/graphql", [Subprotocol("graphql-ws")]
    async with connect(url, subprotocols=protocols, additional_headers=tokens(header)) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["type"] == "connection_error"
        assert "X-Auth-Token" in message["payload"]["message"]
        assert await closed_with(ws) == 4400


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_the_same_token_in_header_and_payload_is_accepted(live, protocol):
    url = f"ws://127.0.0.1:{live}/graphql"
    async with connect(url, subprotocols=[Subprotocol(protocol)], additional_headers=tokens([TOKEN])) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": f" {TOKEN} "}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"


async def test_a_server_without_denial_responses_gets_the_upgrade_closed_with_4400():
    """Where the ASGI server cannot answer an upgrade over HTTP, the socket is closed before it is accepted."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/graphql", "headers": [], "extensions": {}}
    await refuse_upgrade(WebSocket(scope, receive, send), RepeatedCredential("X-Auth-Token: sent 2 times"))
    assert sent == [{"type": "websocket.close", "code": 4400, "reason": "X-Auth-Token: sent 2 times"}]
