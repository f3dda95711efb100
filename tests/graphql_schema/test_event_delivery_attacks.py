"""Attacks on events sent from the resolver (graphql_schema.event_delivery): answers with errors interleaved with
plain ones, a query and a mutation on the same socket, a peer leaving mid-send; compared with graphql-ws."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from typing import Any

import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_schema.websocket_handlers import TransportWSHandler
from models import GraphStore
from tests.graphql_schema.test_subscription_cost import cursor_now
from tests.helpers import (
    AUTH,
    START_MESSAGE,
    acknowledged,
    eventually,
    gateway_app,
    operations_counted,
    served,
    subscribed,
)
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


async def burst_job(raw_db: Any) -> None:
    """Twenty tasks of job "burst", each changed at once to make a burst of events."""
    await raw_db.tasks.insert_many(
        [{"_id": Int64(n), "job-id": "burst", "nexts": [], "previous": []} for n in range(1, 21)]
    )


@pytest.mark.parametrize("leaving", ["abort", "complete"])
async def test_a_peer_leaving_mid_burst_ends_its_subscriptions_quietly(
    store: GraphStore, raw_db: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture, leaving: str
) -> None:
    caplog.set_level(logging.WARNING)
    app, settings = gateway_app(store, tmp_path)
    await burst_job(raw_db)
    async with served(app, settings) as port:
        before, failed = open_subscriptions(), operations_counted("anonymous", "error")
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
    assert operations_counted("anonymous", "error") == failed  # a peer leaving is no failed operation
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]


async def test_a_graphql_ws_peer_leaving_mid_burst_ends_its_subscriptions_quietly(
    store: GraphStore, raw_db: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app, settings = gateway_app(store, tmp_path)
    await burst_job(raw_db)
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


VARIED = (
    'subscription($after: String, $full: Boolean!) { taskEvents(jobId: "mix", after: $after) '
    "{ taskId task { status nexts @include(if: $full) { id } } } }"
)
MUTATION = 'mutation { createTasks(tasks: [{id: 9, jobId: "mix"}]) { id } }'


async def test_subscriptions_of_one_socket_get_their_own_answers_through_catch_up_and_live(
    store: GraphStore, raw_db: Any, tmp_path: Any
) -> None:
    """Three subscriptions on one socket after one cursor (two share a selection, one has another value of a
    variable its payload depends on), events made before they start (caught up) and after (live), a mutation
    and a query on the same socket, and one of the two sharing ones completed mid-way: every one gets each event
    of its own once, in order, with its own payload; the completed one gets nothing once the gateway has read
    its `complete` (a ping answered after it)."""
    await mixed_job(raw_db)
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port:
        after = await cursor_now(port)
        for n in range(3):
            await raw_db.tasks.update_one({"_id": Int64(1 + n % 2)}, {"$set": {"status": f"S{n}"}})
        async with connection(port) as ws:
            async with subscribed(3):
                for op, full in (("a", True), ("b", True), ("c", False)):
                    payload = {"query": VARIED, "variables": {"after": after, "full": full}}
                    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
            got: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": [], "m": [], "q": [], "pong": []}
            while len(got["a"]) < 2:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                got[message.get("id", message["type"])].append(message)
            await ws.send(json.dumps({"id": "a", "type": "complete"}))
            await ws.send(json.dumps({"type": "ping"}))
            await ws.send(json.dumps({"id": "m", "type": "subscribe", "payload": {"query": MUTATION}}))
            for n in range(3, 6):
                await raw_db.tasks.update_one({"_id": Int64(1 + n % 2)}, {"$set": {"status": f"S{n}"}})
            await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ task(id: 2) { id } }"}}))
            late: list[dict[str, Any]] = []
            while len(got["b"]) < 7 or len(got["c"]) < 7 or len(got["m"]) < 2 or len(got["q"]) < 2:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                got[message.get("id", message["type"])].append(message)
                if message.get("id") == "a" and got["pong"]:
                    late.append(message)
    assert not late, late
    assert [m["type"] for m in got["m"]] == ["next", "complete"] and "errors" not in got["m"][0]["payload"], got["m"]
    assert [m["type"] for m in got["q"]] == ["next", "complete"] and got["q"][0]["payload"]["data"] == {
        "task": {"id": "2"}
    }, got["q"]
    for op in "bc":
        assert all(m["type"] == "next" and set(m["payload"]) == {"data"} for m in got[op]), got[op]
        events = [m["payload"]["data"]["taskEvents"] for m in got[op]]
        updates = [event["task"]["status"] for event in events if event["taskId"] != "9"]
        assert updates == [f"S{n}" for n in range(6)], events
        assert [event["taskId"] for event in events].count("9") == 1, events
        assert all(("nexts" in event["task"]) is (op == "b") for event in events), events


async def test_a_closed_connection_that_ran_a_query_and_a_mutation_is_let_go(
    store: GraphStore, raw_db: Any, tmp_path: Any
) -> None:
    """Its operations' reads start timers that copy their task's context, and a cancelled timer waits in the
    loop's schedule until its time (the MongoDB timeout): what that context holds for the operation must not keep
    the connection's handler (its socket, its caller's context) alive so long after the connection is closed."""
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "j", "nexts": [], "previous": []})
    app, settings = gateway_app(store, tmp_path)
    earlier = _handlers()  # held: none of their ids can be reused by this test's handler

    async def gone() -> bool:
        gc.collect()
        return all(any(handler is other for other in earlier) for handler in _handlers())

    async with served(app, settings) as port:
        async with connection(port) as ws:
            for op, query in (("q", "{ task(id: 1) { id nexts { id } } }"), ("m", MUTATION)):
                await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query}}))
                answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
                end = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert answer["type"] == "next" and "errors" not in answer["payload"], answer
                assert end == {"id": op, "type": "complete"}, end
        await eventually(gone, timeout=store.timeout_s / 2, what="the closed connection's handler collected")


def _handlers() -> list[TransportWSHandler]:
    return [thing for thing in gc.get_objects() if type(thing) is TransportWSHandler]


@pytest.mark.parametrize("ending", ["peer left", "client completed"])
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_subscription_the_client_ended_is_counted_once_and_not_as_an_operation_in_error(
    store: GraphStore, raw_db: Any, tmp_path: Any, protocol: str, ending: str
) -> None:
    """A dashboard closed (or navigating away) while its events were being sent is an operation that ended, not
    one that failed, on /metrics (an error rate would rise with every tab closed), whichever protocol served it."""
    name = f"Left_{protocol.replace('-', '_')}_{ending.replace(' ', '_')}"
    query = f'subscription {name} {{ taskEvents(jobId: "left") {{ taskId }} }}'
    stop = "complete" if protocol == "graphql-transport-ws" else "stop"
    app, settings = gateway_app(store, tmp_path)
    errors, ended_ok = operations_counted(name, "error"), operations_counted(name, "ok")
    earlier = _handlers()
    async with served(app, settings) as port:
        before = open_subscriptions()
        async with acknowledged(port, protocol) as ws:
            async with subscribed(1):
                await ws.send(json.dumps({"id": "1", "type": START_MESSAGE[protocol], "payload": {"query": query}}))
            await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "left", "nexts": [], "previous": []})
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert message["payload"] == {"data": {"taskEvents": {"taskId": "1"}}}, message
            if ending == "peer left":
                ws.transport.abort()
            else:
                await ws.send(json.dumps({"id": "1", "type": stop}))
            for n in range(2, 6):  # sent after it ended
                await raw_db.tasks.insert_one({"_id": Int64(n), "job-id": "left", "nexts": [], "previous": []})

            async def ended() -> bool:
                gc.collect()
                handlers_gone = all(any(h is other for other in earlier) for h in _handlers())
                left = ending != "peer left" or handlers_gone
                return open_subscriptions() == before and left and operations_counted(name, "ok") > ended_ok

            await eventually(ended, what="the subscription ended, counted")
    assert operations_counted(name, "ok") == ended_ok + 1
    assert operations_counted(name, "error") == errors


ODD_DOCUMENTS = [
    'subscription { ...Root } fragment Root on Subscription { taskEvents(jobId: "odd") { taskId } }',
    'subscription { renamed: taskEvents(jobId: "odd") { __typename id: taskId t: task { __typename id } } }',
    'subscription S($no: Boolean = true) { taskEvents(jobId: "odd") { taskId task @skip(if: $no) { id } } }',
    'subscription { taskEvents(jobId: "odd") { ... on TaskEvent { kind task { nexts { id } } } } }',
]


@pytest.mark.parametrize("document", ODD_DOCUMENTS)
async def test_odd_documents_are_answered_as_over_graphql_ws(
    store: GraphStore, raw_db: Any, tmp_path: Any, document: str
) -> None:
    """A root field reached through a fragment or an alias, introspection fields, directives with defaulted
    variables: the same payloads over both protocols."""
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        connection(port) as ws,
        connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-ws")]) as legacy,
    ):
        await legacy.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await legacy.recv())["type"] == "connection_ack"
        async with subscribed(2):
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}}))
            await legacy.send(json.dumps({"id": "1", "type": "start", "payload": {"query": document}}))
        await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "odd", "nexts": [], "previous": []})
        sent = json.loads(await asyncio.wait_for(ws.recv(), 30))
        older = json.loads(await asyncio.wait_for(legacy.recv(), 30))
        while older["type"] == "ka":
            older = json.loads(await asyncio.wait_for(legacy.recv(), 30))
    assert set(sent) == {"id", "type", "payload"} and sent["type"] == "next", sent
    assert "errors" not in sent["payload"] and sent["payload"] == older["payload"], (sent, older)
