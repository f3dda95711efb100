"""A gateway process stopped (SIGTERM, as a restart or a deployment stops it) with subscriptions open: every
WebSocket is closed with 1012 (service restart) at once, with no UNAVAILABLE or other error before it, so that
clients reconnect and resume with their last cursor (elsewhere, or once it is back) and miss nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from websockets.exceptions import ConnectionClosed

from gateway.embedded import free_port
from tests.helpers import AUTH, eventually, gateway_process, gateway_ready
from tests.models.test_fanout import connection, subscribe

DB = "shutdown_subscriptions"
SERVICE_RESTART = 1012


async def live_subscriptions(rest: httpx.AsyncClient) -> float:
    for line in (await rest.get("/metrics")).text.splitlines():
        if line.startswith('tracking_subscriptions_open{phase="live"}'):
            return float(line.split()[-1])
    return 0.0


async def until_closed(ws: Any) -> tuple[list[dict[str, Any]], int | None, float]:
    """Every message until the connection closes, its close code, and when it closed (monotonic)."""
    messages: list[dict[str, Any]] = []
    try:
        async for raw in ws:
            messages.append(json.loads(raw))
    except ConnectionClosed:
        pass
    return messages, ws.close_code, time.monotonic()


@pytest.mark.slow
async def test_a_stopped_gateway_closes_every_websocket_with_1012_and_no_error_first(mongo_uri, tmp_path):
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    await client.drop_database(DB)
    port = free_port()
    gateway = gateway_process(mongo_uri, DB, port, tmp_path / "var")
    try:
        await eventually(partial(gateway_ready, port), timeout=90, what="the gateway ready")
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
            AsyncExitStack() as stack,
        ):
            cursor = (await rest.post("/graphql", json={"query": "{ eventCursor }"})).json()["data"]["eventCursor"]
            sockets = [await stack.enter_async_context(connection(port)) for _ in range(5)]
            for n in range(50):  # on one job or all, live or resuming from a cursor
                await subscribe(sockets[n % 5], str(n), "stop" if n % 2 else None, cursor if n % 3 == 0 else None)

            async def all_live() -> bool:
                return await live_subscriptions(rest) >= 50

            await eventually(all_live, timeout=60, what="50 live subscriptions")
            answer = await rest.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "stop"}]})
            assert answer.status_code == 200, answer.text
            readers = [asyncio.create_task(until_closed(ws)) for ws in sockets]
            await asyncio.sleep(1)  # the event reaches every subscription before the gateway is stopped
            gateway.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            closed = await asyncio.wait_for(asyncio.gather(*readers), 30)
        for index, (messages, code, at) in enumerate(closed):
            assert code == SERVICE_RESTART, (code, messages)
            assert at - stopped < 5, at - stopped
            assert all(message["type"] == "next" and "errors" not in message["payload"] for message in messages), [
                message for message in messages if message["type"] != "next" or "errors" in message["payload"]
            ]
            # Each subscription's event came (its cursor is what it resumes with), nothing else.
            assert sorted(message["id"] for message in messages) == sorted(str(n) for n in range(50) if n % 5 == index)
        assert await asyncio.to_thread(gateway.wait, 60) == 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
            await asyncio.to_thread(gateway.wait, 60)
        await client.drop_database(DB)
        await client.close()
