"""Per-caller rates: a token's --rate (else TRACKING_CALLER_RATE) is answered beyond with 429 and Retry-After,
as a REST Error body or a GraphQL error coded RATE_LIMITED, and changes nothing; other callers are not slowed;
subscriptions per caller are bounded by TRACKING_SUBSCRIPTIONS_PER_CALLER."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.helpers import AUTH, TOKEN, eventually, gateway_app, lifespan_client, next_message, served, subscription

DONE = {"query": "{ doneStatuses }"}


async def test_a_token_s_rate_is_answered_beyond_with_429_and_retry_after(store, raw_db, tmp_path):
    # One request per five seconds: the requests below that must be refused follow a refusal within far less
    # than a window, however loaded the machine.
    secret = await store.named_tokens().create("slow", write=True, rate=0.2)
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, {"X-Auth-Token": secret}) as http:
        assert (await http.get("/tracking/task/1")).status_code == 404
        await refused_soon(lambda: http.get("/tracking/task/1"))
        refused = await http.post("/tracking/task", json={"tasks": [{"job-id": "j"}]})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "0.2 per second" in refused.json()["message"] and "TRACKING_CALLER_RATE" in refused.json()["message"]
        graphql = await http.post("/graphql", json=DONE)
        assert graphql.status_code == 429 and int(graphql.headers["Retry-After"]) >= 1
        assert graphql.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert "data" not in graphql.json()
        assert (await http.post("/graphql", json=DONE, headers=AUTH)).status_code == 200  # another caller
        assert await raw_db.tasks.count_documents({}) == 0

        async def served_again() -> bool:
            await asyncio.sleep(0.5)
            return (await http.post("/graphql", json=DONE)).status_code == 200

        await eventually(served_again, what="the caller served again after Retry-After")


async def test_the_default_rate_applies_to_callers_without_one(store, tmp_path):
    app, _ = gateway_app(store, tmp_path, caller_rate=0.2)
    async with lifespan_client(app, AUTH) as http:
        assert (await http.post("/graphql", json=DONE)).status_code == 200
        await refused_soon(lambda: http.post("/graphql", json=DONE))


async def refused_soon(send: Callable[[], Awaitable[httpx.Response]]) -> None:
    """Send until the rate refuses: the first request after the window's one allowed is, unless a whole window
    passed since (then another is allowed, and the next is refused)."""
    statuses = [(await send()).status_code for _ in range(3)]
    assert 429 in statuses, statuses


async def test_subscriptions_per_caller_are_bounded_across_connections(store, tmp_path):
    app, settings = gateway_app(store, tmp_path, subscriptions_per_caller=1)
    async with served(app, settings) as port, subscription(port, {}, TOKEN, "kind") as first:
        async with subscription(port, {}, TOKEN, "kind") as second:
            refused = await next_message(second)
            assert refused["type"] == "error" or refused["payload"].get("errors"), refused
            text = json.dumps(refused)
            assert "TOO_MANY_SUBSCRIPTIONS" in text and "TRACKING_SUBSCRIPTIONS_PER_CALLER" in text
        await first.send(json.dumps({"id": "1", "type": "complete"}))

        async def room_again() -> bool:
            async with subscription(port, {}, TOKEN, "kind") as third:
                try:
                    message = await next_message(third, timeout=1)
                except TimeoutError:
                    return True  # no refusal: it is open, waiting for events
                return "TOO_MANY_SUBSCRIPTIONS" not in json.dumps(message)

        await eventually(room_again, what="a subscription accepted once the first completed")


async def test_queries_and_mutations_over_a_websocket_count_against_the_caller_s_rate(store, raw_db, tmp_path):
    """A token's rate bounds what it sends, whichever transport carries it: mutations sent as `subscribe`
    messages on one open WebSocket (graphql-transport-ws runs queries and mutations too) were never counted, so a
    token allowed 2 per second wrote as fast as the socket carried them. One request per five seconds: the six
    are sent well within one window, however loaded the machine."""
    secret = await store.named_tokens().create("slow", write=True, rate=0.2)
    app, settings = gateway_app(store, tmp_path)
    create = {"query": 'mutation { createTasks(tasks: [{jobId: "j"}]) { id } }'}
    async with served(app, settings) as port:
        uri = f"ws://127.0.0.1:{port}/graphql"
        async with connect(uri, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": secret}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            for number in range(6):
                await ws.send(json.dumps({"id": str(number), "type": "subscribe", "payload": create}))
            answers: dict[str, dict[str, object]] = {}
            while len(answers) < 6:
                message = await next_message(ws)
                if message["type"] in ("next", "error"):
                    answers[message["id"]] = message
    refused = [message for message in answers.values() if "RATE_LIMITED" in json.dumps(message)]
    assert refused, answers
    assert "0.2 per second" in json.dumps(refused[0])
    assert await raw_db.tasks.count_documents({}) == 6 - len(refused) <= 1
