"""Attacks on events sent from the resolver (graphql_schema.event_delivery): answers with errors interleaved with
plain ones, a query and a mutation on the same socket, a peer leaving mid-send; compared with graphql-ws."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from models import GraphStore
from tests.graphql_schema.test_subscription_cost import cursor_now
from tests.helpers import AUTH, eventually, gateway_app, served, subscribed
from tests.models.test_fanout import connection

HUB_NEXTS = 40
QUERY = (
    'subscription($after: String) { taskEvents(jobId: "mix", after: $after) { taskId cursor task { nexts { id } } } }'
)


def open_subscriptions() -> float:
    return REGISTRY.get_sample_value("tracking_graphql_open_subscriptions") or 0.0


async def mixed_job(raw_db: Any) -> None:
    """Task 1 with HUB_NEXTS next tasks (its events' answers go over the per-event budget), task 2 with none."""
    leaves = range(100, 100 + HUB_NEXTS)
    await raw_db.tasks.insert_many(
        [
            {"_id": Int64(1), "job-id": "mix", "nexts": [Int64(n) for n in leaves], "previous": []},
            {"_id": Int64(2), "job-id": "mix", "nexts": [], "previous": []},
        ]
        + [{"_id": Int64(n), "job-id": "mix", "nexts": [], "previous": [Int64(1)]} for n in leaves]
    )


async def test_errors_interleaved_with_answers_come_in_order_once_as_over_graphql_ws(
    store: GraphStore, raw_db: Any, tmp_path: Any
) -> None:
    await mixed_job(raw_db)
    app, settings = gateway_app(store, tmp_path, graphql_max_event_cost=30)
    async with served(app, settings) as port:
        after = await cursor_now(port)
        async with (
            connection(port) as ws,
            connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-ws")]) as legacy,
        ):
            await legacy.send(json.dumps({"type": "connection_init", "payload": AUTH}))
            assert json.loads(await legacy.recv())["type"] == "connection_ack"
            payload = {"query": QUERY, "variables": {"after": after}}
            async with subscribed(2):
                await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": payload}))
                await legacy.send(json.dumps({"id": "s", "type": "start", "payload": payload}))
            order = [1, 2, 1, 1, 2, 2, 1, 2]
            for n, task_id in enumerate(order):
                await raw_db.tasks.update_one({"_id": Int64(task_id)}, {"$set": {"status": f"S{n}"}})
            # Meanwhile a query and a mutation on the same socket.
            await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ task(id: 2) { id } }"}}))
            transport: list[dict[str, Any]] = []
            while len([m for m in transport if m.get("id") == "s"]) < len(order) or not any(
                m.get("id") == "q" and m["type"] == "complete" for m in transport
            ):
                transport.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            older: list[dict[str, Any]] = []
            while len(older) < len(order):
                message = json.loads(await asyncio.wait_for(legacy.recv(), 30))
                if message["type"] != "ka":
                    older.append(message)
        events = [m for m in transport if m.get("id") == "s"]
        assert all(set(m) == {"id", "type", "payload"} and m["type"] == "next" for m in events), events
        ids = [int(m["payload"]["data"]["taskEvents"]["taskId"]) for m in events]
        assert ids == order, events
        with_errors = ["errors" in m["payload"] for m in events]
        assert with_errors == [task_id == 1 for task_id in order], events
        assert [m["payload"] for m in events] == [m["payload"] for m in older]
        assert [m["type"] for m in transport if m.get("id") == "q"] == ["next", "complete"]


PLAIN = 'subscription { taskEvents(jobId: "burst") { taskId cursor task { status } } }'


@pytest.mark.parametrize("leaving", ["abort", "complete"])
async def test_a_peer_leaving_mid_burst_ends_its_subscriptions_quietly(
    store: GraphStore, raw_db: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture, leaving: str
) -> None:
    caplog.set_level(logging.WARNING)
    app, settings = gateway_app(store, tmp_path)
    await raw_db.tasks.insert_many(
        [{"_id": Int64(n), "job-id": "burst", "nexts": [], "previous": []} for n in range(1, 21)]
    )
    async with served(app, settings) as port:
        before = open_subscriptions()
        async with connection(port) as ws, connection(port) as other:
            async with subscribed(31):
                for op in range(30):
                    await ws.send(json.dumps({"id": str(op), "type": "subscribe", "payload": {"query": PLAIN}}))
                await other.send(json.dumps({"id": "kept", "type": "subscribe", "payload": {"query": PLAIN}}))
            writes = [
                asyncio.create_task(raw_db.tasks.update_one({"_id": Int64(n)}, {"$set": {"status": "RUNNING"}}))
                for n in range(1, 21)
            ]
            await asyncio.wait_for(ws.recv(), 30)  # the burst is being sent
            if leaving == "abort":
                ws.transport.abort()
            else:
                for op in range(30):
                    await ws.send(json.dumps({"id": str(op), "type": "complete"}))
            await asyncio.gather(*writes)

            async def ended() -> bool:
                return open_subscriptions() == before + 1

            await eventually(ended, what="the leaving peer's subscriptions ended")
            received = 0
            while received < 20:
                message = json.loads(await asyncio.wait_for(other.recv(), 30))
                assert message["type"] == "next" and "errors" not in message["payload"], message
                received += 1
            if leaving == "complete":  # the connection is still served: an id reused subscribes again
                async with subscribed(1):
                    await ws.send(json.dumps({"id": "0", "type": "subscribe", "payload": {"query": PLAIN}}))
                await raw_db.tasks.update_one({"_id": Int64(1)}, {"$set": {"status": "DONE"}})
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if (
                        message["type"] == "next"
                        and message["payload"]["data"]["taskEvents"]["task"]["status"] == "DONE"
                    ):
                        assert message["id"] == "0"
                        break
    await asyncio.sleep(0)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]


async def test_a_graphql_ws_peer_leaving_mid_burst_ends_its_subscriptions_quietly(
    store: GraphStore, raw_db: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app, settings = gateway_app(store, tmp_path)
    await raw_db.tasks.insert_many(
        [{"_id": Int64(n), "job-id": "burst", "nexts": [], "previous": []} for n in range(1, 21)]
    )
    async with served(app, settings) as port:
        before = open_subscriptions()
        async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            async with subscribed(30):
                for op in range(30):
                    await ws.send(json.dumps({"id": str(op), "type": "start", "payload": {"query": PLAIN}}))
            writes = [
                asyncio.create_task(raw_db.tasks.update_one({"_id": Int64(n)}, {"$set": {"status": "RUNNING"}}))
                for n in range(1, 21)
            ]
            while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != "data":
                pass  # until the burst is being sent
            ws.transport.abort()
            await asyncio.gather(*writes)

            async def ended() -> bool:
                return open_subscriptions() == before

            await eventually(ended, what="the leaving peer's subscriptions ended")
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]
