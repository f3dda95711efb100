"""Memory comes back after an answer: each operation's reads are forgotten once it has its answer (a
WebSocket's context serves many operations, and must neither keep nor answer from earlier reads), and after a
large answer is sent its memory is handed back to the operating system (web.memory)."""

from __future__ import annotations

import asyncio
import ctypes.util
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import graphql_schema.large_answers as large_answers
from graphql_schema.context import Context
from tests.helpers import AUTH, TOKEN, eventually, gateway_app, lifespan_client, task
from tests.test_graphql import live
from web.memory import release_free_memory

__all__ = ["live"]  # the fixture, used by name

NOT_COMPILED = '{ tasks(ids: ["1"]) { id status nexts { id status } } }'
"""Read through the DataLoaders (Query.tasks is answered field by field)."""


async def _query_over(ws, operation_id: str, query: str) -> dict:
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": query}}))
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "next", message
    return message["payload"]["data"]


async def _linked_pair(client: httpx.AsyncClient, job: str) -> None:
    """Tasks 1 (READY) and 2 in `job`, 1 before 2."""
    created = await client.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": job, "status": "READY"}]})
    assert created.status_code == 200, created.text
    created = await client.post("/tracking/task", json={"tasks": [{"id": 2, "job-id": job}]})
    assert created.status_code == 200, created.text
    linked = await client.put("/tracking/task/1/next?nextTaskId=2")
    assert linked.status_code < 300, linked.text


async def test_a_websocket_query_reads_afresh_after_an_earlier_one(live) -> None:
    """Two queries on one connection, the tasks changed in between: the second answers the change."""
    url = f"127.0.0.1:{live}"
    async with httpx.AsyncClient(base_url=f"http://{url}", headers={"X-Auth-Token": TOKEN}) as rest:
        await _linked_pair(rest, "w")
        async with connect(f"ws://{url}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            first = await _query_over(ws, "a", NOT_COMPILED)
            assert first["tasks"] == [{"id": "1", "status": "READY", "nexts": [{"id": "2", "status": None}]}]
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "complete"
            for task_id, status in ((1, "RUNNING"), (2, "DONE")):
                changed = await rest.put(f"/tracking/task/{task_id}", json={"status": status})
                assert changed.status_code < 300, changed.text
            second = await _query_over(ws, "b", NOT_COMPILED)
    assert second["tasks"] == [{"id": "1", "status": "RUNNING", "nexts": [{"id": "2", "status": "DONE"}]}]


async def test_an_operation_forgets_what_it_read(store, tmp_path, monkeypatch) -> None:
    """Once a query has its answer its context's DataLoaders hold nothing more."""
    contexts: list[Context] = []
    forget = Context.forget_reads

    def recorded(context: Context) -> None:
        contexts.append(context)
        forget(context)

    monkeypatch.setattr(Context, "forget_reads", recorded)
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, AUTH) as client:
        await _linked_pair(client, "f")
        body = (await client.post("/graphql", json={"query": NOT_COMPILED})).json()
    assert body["data"]["tasks"][0]["nexts"] == [{"id": "2", "status": None}]
    [context] = contexts
    assert context.known_tasks() == {}
    assert context.cached_tasks([1]) is None  # not held any more: it would be read again


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library to ask")
def test_free_memory_is_handed_back_where_the_c_library_can() -> None:
    assert release_free_memory() is (ctypes.util.find_library("c") or "").startswith("libc.so")


async def test_memory_is_released_once_a_large_answer_is_sent_and_not_after_a_small_one(
    store, tmp_path, monkeypatch
) -> None:
    await store.create_tasks([task(id=i, job_id="big", status="READY") for i in range(1, 51)])
    released: list[bool] = []

    def release() -> bool:
        released.append(True)
        return True

    monkeypatch.setattr(large_answers, "release_free_memory", release)
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, AUTH) as client:
        small = await client.post("/graphql", json={"query": '{ task(id: "1") { id } }'})
        assert small.json()["data"] == {"task": {"id": "1"}}
        assert released == []
        large = await client.post("/graphql", json={"query": '{ job(id: "big") { tasks { id } } }'})
        assert len(large.json()["data"]["job"]["tasks"]) == 50

        async def released_once() -> bool:
            return released == [True]

        await eventually(released_once, what="memory released after the large answer")
