"""Documents other tools wrote with PyMongo, and the legacy GraphQL over WebSocket protocol, as regression tests
through HTTP or GraphQL on the real MongoDB: readers never fail on a stored document, the validator answers tools
with MongoDB's own error, and the legacy WebSocket protocol checks its token."""

from __future__ import annotations

import asyncio
import json

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo.errors import WriteError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from models import GraphStore
from tests.conftest import TEST_DB
from tests.helpers import AUTH, subscribed
from tests.helpers import graphql as gql

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)


def websocket(port: int, protocol: str = "graphql-transport-ws") -> connect:
    return connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol(protocol)])


# ---- documents other tools wrote ------------------------------------------------------------------------------------


async def insert_raw(raw_db, *docs: dict) -> None:
    """As a tool that bypasses (or predates) the validator would."""
    await raw_db.tasks.insert_many(list(docs), bypass_document_validation=True)


async def test_wrong_typed_fields_never_fail_a_reader(client, raw_db):
    await insert_raw(
        raw_db,
        {"_id": Int64(1), "job-id": "ops", "status": 5, "nexts": [Int64(2)], "previous": []},
        {
            "_id": Int64(2),
            "job-id": "ops",
            "status": "READY",
            "number-of-retries": "three",
            "wait-between-retries": 2.0,
            "root": "yes",
            "start-time": "2026-11-22T18:00:00Z",
            "finish-time": "soon",
            "nexts": "none",
            "previous": [Int64(1), "x"],
        },
        {"_id": 3.0, "job-id": "ops", "status": "READY", "nexts": [], "previous": []},
        {"_id": "not-a-task", "job-id": "ops", "status": "READY", "nexts": [], "previous": []},
    )
    body = await gql(
        client,
        '{ job(id: "ops") { statusCounts { status count } tasks { id status numberOfRetries '
        "waitBetweenRetries root startTime finishTime nexts { id } previous { id } } } }",
    )
    assert "errors" not in body, body
    job = body["data"]["job"]
    assert job["statusCounts"] == [{"status": "5", "count": 1}, {"status": "READY", "count": 2}]
    second = job["tasks"][1]
    assert second == {
        "id": "2",
        "status": "READY",
        "numberOfRetries": None,
        "waitBetweenRetries": 2,
        "root": None,
        "startTime": "2026-11-22T18:00:00.000Z",
        "finishTime": None,
        "nexts": [],
        "previous": [{"id": "1"}],
    }
    assert [t["id"] for t in job["tasks"]] == ["1", "2", "3"]
    rest = (await client.get("/tracking/ops/task/roots")).json()["tasks"]
    assert [t["id"] for t in rest] == [1, 2, 3]
    assert rest[0]["status"] == "5" and "number-of-retries" not in rest[1]
    assert (await client.get("/tracking/task/3")).json()["id"] == 3


async def test_the_counts_of_a_job_leave_out_documents_whose_id_is_no_task_id(client, gateway_client, raw_db):
    """Numbers that are no task id (negative, zero, fractional, Decimal128, past int64) are served by no reader:
    the job's taskCount, statusCounts and summary, and the listing's, count only the tasks its pages show, whether
    the tasks are read in the same query or not."""
    await insert_raw(
        raw_db,
        {"_id": Int64(1), "job-id": "ops", "status": "READY", "nexts": [], "previous": []},
        {"_id": 2.0, "job-id": "ops", "status": "READY", "nexts": [], "previous": []},
        *(
            {"_id": bad, "job-id": "ops", "status": "GHOST", "nexts": [], "previous": []}
            for bad in (Int64(-5), 0, 2.5, 1e-300, Decimal128("7"), 1e19)
        ),
    )
    for compiled in (True, False):
        http = client if compiled else await gateway_client(graphql_compiled=False)
        body = await gql(
            http,
            '{ job(id: "ops") { taskCount statusCounts { status count } summary { progress } tasks { id } } '
            "jobs(first: 10) { edges { node { id taskCount } } } }",
        )
        assert "errors" not in body, body
        job = body["data"]["job"]
        assert [t["id"] for t in job["tasks"]] == ["1", "2"]
        assert (job["taskCount"], job["statusCounts"]) == (2, [{"status": "READY", "count": 2}]), compiled
        assert body["data"]["jobs"]["edges"] == [{"node": {"id": "ops", "taskCount": 2}}], compiled
        counts = await gql(http, '{ job(id: "ops") { taskCount statusCounts { status count } summary { progress } } }')
        assert counts["data"]["job"]["taskCount"] == 2 and len(counts["data"]["job"]["statusCounts"]) == 1, compiled


async def test_a_subscriber_gets_events_for_malformed_documents(live, raw_db):
    async with websocket(live) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        query = "subscription { taskEvents { kind taskId task { status root } } }"
        async with subscribed():
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        await insert_raw(raw_db, {"_id": Int64(9), "status": 5, "root": "yes", "nexts": [], "previous": []})
        await insert_raw(raw_db, {"_id": Int64(10), "status": "OK", "nexts": [], "previous": []})
        for expected in ({"status": "5", "root": None}, {"status": "OK", "root": None}):
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            assert message["payload"]["data"]["taskEvents"]["task"] == expected


async def test_the_validator_gives_tools_mongodbs_own_error(raw_db, store):
    with pytest.raises(WriteError) as refused:
        await raw_db.tasks.insert_one({"_id": Int64(1), "status": 5, "nexts": [], "previous": []})
    assert refused.value.code == 121  # DocumentValidationFailure
    with pytest.raises(WriteError):
        await raw_db.tasks.insert_one({"_id": 1, "nexts": [], "previous": []})  # int32 id
    with pytest.raises(WriteError):
        await raw_db.counters.insert_one({"_id": "other", "seq": "x"})
    await raw_db.tasks.insert_one({"_id": Int64(1), "status": "OK", "nexts": [], "previous": [], "tool-field": 1})


async def test_validation_action_warn_lets_tools_write_but_keeps_readers_working(mongo_uri, raw_db, store):
    warned = await GraphStore.open(mongo_uri, TEST_DB, validation_action="warn")
    try:
        options = await raw_db.command("listCollections", filter={"name": "tasks"})
        assert options["cursor"]["firstBatch"][0]["options"]["validationAction"] == "warn"
        await raw_db.tasks.insert_one({"_id": Int64(1), "root": "yes", "nexts": [], "previous": []})
        assert "root" not in await warned.get_task(1)
    finally:
        await warned.close()
        await GraphStore.open(mongo_uri, TEST_DB)  # back to "error" for the other tests
        await raw_db.command("collMod", "tasks", validationAction="error")


async def test_updating_a_task_a_tool_stored_with_wrong_types_still_works(client, raw_db):
    await insert_raw(raw_db, {"_id": Int64(1), "number-of-retries": "3", "nexts": [], "previous": []})
    response = await client.put("/tracking/task/1", json={"status": "DONE"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "DONE"


# ---- GraphQL over WebSocket -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [{}, {"X-Auth-Token": "wrong"}])
async def test_legacy_graphql_ws_refuses_a_bad_token_with_4403(live, payload):
    async with websocket(live, "graphql-ws") as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_error"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_legacy_graphql_ws_accepts_a_good_token(live):
    async with websocket(live, "graphql-ws") as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
