"""Attacks on the create whose answer is rendered while its insert is in flight
(models.storage.Storage.insert_in_order): deadlines, failures and concurrency meanwhile. What a caller sees must
be all of the create or none of it, and a create that failed must hold nothing in MongoDB afterwards. `tiny_slices`
makes small creates cross many rendering slices."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import xmltodict
from bson.int64 import Int64
from pymongo.errors import DuplicateKeyError
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import models.storage
import rest.routes as routes
from gateway.heap import HeapUpkeep, freeze_startup_heap
from models import GraphStore, HistoryWriter
from models.ids import IdAllocator
from rest.encoding import task_to_api
from tests.conftest import TEST_DB
from tests.helpers import (
    AUTH,
    TOKEN,
    assert_link_invariant,
    eventually,
    gateway_app,
    lifespan_client,
    next_event,
    open_transactions,
    served,
    writing_history,
)
from tests.helpers import subscription as _subscription

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

LARGE = 10_000
NAVIGABLE = "navigable-execution-task"


@pytest.fixture
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.storage, "ALONGSIDE_SLICE", 2)


@pytest.fixture
async def no_transaction_left(raw_db: Any) -> Any:
    """Kills what a failing test left open, so that later tests (and their index builds) do not wait 60 s."""
    yield
    await raw_db.client.admin.command("killAllSessions", [])


async def test_a_create_whose_deadline_passes_mid_insert_leaves_no_transaction_open(
    store, mongo_uri, tmp_path, raw_db, caplog, no_transaction_left
):
    """A 10,000-task create under deadlines short enough to pass while its insert is in flight answers 503
    (or 200 when it made it). A 503 must leave nothing behind: no task stored, and no transaction holding the
    inserted tasks (and their ids, and the collection's lock) until MongoDB's transaction lifetime (60 s)
    ends it; else the same create sent again with its ids conflicts for a minute and index builds wait."""
    tasks = [
        {"id": 1_000_000 + i, "name": f"n{i}", "job-id": "deadline", "description": "d" * 1000} for i in range(LARGE)
    ]
    refused = 0
    for timeout_ms in (100, 200, 300, 400, 500, 600):
        short = await GraphStore.open(mongo_uri, TEST_DB, timeout_ms=timeout_ms)
        try:
            app, _ = gateway_app(short, tmp_path)
            async with lifespan_client(app, AUTH) as http:
                response = await http.post("/tracking/task", json={"tasks": tasks})
        finally:
            await short.close()
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            await raw_db.tasks.delete_many({})
            continue
        refused += 1
        assert await raw_db.tasks.count_documents({}) == 0

        async def closed() -> bool:  # MongoDB stops a killed insert of thousands of tasks within a second or so
            return await open_transactions(raw_db) == []

        # Longer on a loaded machine; under MongoDB's transaction lifetime (60 s), so that only the gateway's abort
        # (or its supersession) can have ended it.
        what = f"the transaction of a create refused after {timeout_ms} ms closed"
        await eventually(closed, timeout=50, what=what)
        assert await raw_db.tasks.count_documents({}) == 0
    assert refused, "no deadline passed mid-create: shorten them"
    assert "never retrieved" not in caplog.text


async def test_concurrent_creates_get_distinct_ids_and_answers_equal_to_reads(tiny_slices, client, raw_db):
    bodies = [
        {"tasks": [{"name": f"c{c}-{i}", "job-id": f"conc-{c}", "nexts": {"tasks": [{"name": f"c{c}-{i}-n"}]}}
                   for i in range(5)]}
        for c in range(8)
    ]  # fmt: skip
    responses = await asyncio.gather(*(client.post("/tracking/task", json=body) for body in bodies))
    answered = []
    for response in responses:
        assert response.status_code == 200, response.text
        answered += response.json()["tasks"]
    ids = [item["id"] for item in answered]
    assert len(ids) == len(set(ids)) == 80
    for item in answered:
        assert (await client.get(f"/tracking/task/{item['id']}")).json() == item
    assert await raw_db.tasks.count_documents({}) == 80
    await assert_link_invariant(raw_db)


async def test_an_id_given_twice_far_apart_is_refused_and_nothing_is_stored(tiny_slices, client, raw_db):
    tasks = [{"id": 100 + i} for i in range(7)] + [{"name": "again", "nexts": {"tasks": [{"id": 101}]}}]
    response = await client.post("/tracking/task", json={"tasks": tasks})
    assert response.status_code == 400, response.text
    assert "101" in response.json()["message"]
    assert await raw_db.tasks.count_documents({}) == 0


async def test_an_id_given_that_a_tool_takes_before_the_insert_is_refused_and_nothing_is_stored(
    tiny_slices, client, raw_db, monkeypatch
):
    """The create checked its given ids; a tool then wrote id 108 (the create's ninth task) before the
    insert: 400 naming 108, and nothing of the tasks before it stays."""
    checked = IdAllocator.refuse_taken

    async def then_a_tool_writes(self: IdAllocator, client_ids: Any) -> None:
        await checked(self, client_ids)
        await raw_db.tasks.insert_one({"_id": Int64(108), "name": "tool's", "nexts": [], "previous": []})

    monkeypatch.setattr(IdAllocator, "refuse_taken", then_a_tool_writes)
    response = await client.post("/tracking/task", json={"tasks": [{"id": 100 + i} for i in range(10)]})
    assert response.status_code == 400, response.text
    assert "108" in response.json()["message"]
    stored = await raw_db.tasks.find({}, {"_id": 1}).to_list()
    assert [doc["_id"] for doc in stored] == [108]


async def test_graphql_create_tasks_across_slices_answers_what_a_query_reads(tiny_slices, client):
    mutation = """mutation($tasks: [TaskInput!]!) { createTasks(tasks: $tasks) { id name jobId nexts { id name } } }"""
    tasks = [{"name": f"g{i}", "jobId": "gql", "nexts": [{"name": f"g{i}-a"}, {"name": f"g{i}-b"}]} for i in range(4)]
    response = await client.post("/graphql", json={"query": mutation, "variables": {"tasks": tasks}})
    body = response.json()
    assert "errors" not in body, body
    created = body["data"]["createTasks"]
    assert len(created) == 12
    for item in created:
        query = "query($id: ID!) { task(id: $id) { id name jobId nexts { id name } } }"
        asked = {"query": query, "variables": {"id": item["id"]}}
        read = (await client.post("/graphql", json=asked)).json()["data"]["task"]
        assert read == item


async def test_a_large_create_reaches_history_and_a_subscription_once_per_task_and_resumes_mid_create(
    live, store, raw_db
):
    """10,000 tasks of about 1.4 KB in one transaction (MongoDB writes it as several oplog entries): the
    history writer records each task once, a subscription delivers each task once, and one that resumes after
    an event in the middle of the create gets exactly the rest."""
    tasks = [{"name": f"b{i}", "job-id": "big", "description": "x" * 1400} for i in range(LARGE)]
    writer = HistoryWriter(store._database, "attack", flush_s=0.2)
    async with (
        writing_history(raw_db, writer),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH, timeout=120) as rest,
        _subscription(live, {"jobId": "big"}, TOKEN, "kind taskId cursor", until_live=True) as ws,
    ):
        response = await rest.post("/tracking/task", json={"tasks": tasks})
        assert response.status_code == 200, response.text[:300]
        ids = [str(item["id"]) for item in response.json()["tasks"]]
        events = [await next_event(ws, timeout=60) for _ in range(LARGE)]
        assert [e["taskId"] for e in events] == ids
        assert {e["kind"] for e in events} == {"CREATED"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 1.5)
        middle = 4_321
        after = events[middle - 1]["cursor"]
        async with _subscription(live, {"jobId": "big", "after": after}, TOKEN, "kind taskId cursor") as resumed:
            rest_of = [await next_event(resumed, timeout=60) for _ in range(LARGE - middle)]
            assert [e["taskId"] for e in rest_of] == ids[middle:]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(resumed.recv(), 1.5)

        async def recorded() -> bool:
            return await raw_db.task_history.count_documents({"job": "big"}) >= LARGE

        await eventually(recorded, timeout=60, what="the create's history")
        await asyncio.sleep(1)
        entries = await raw_db.task_history.find({"job": "big"}, {"task": 1, "kind": 1}).to_list(None)
        assert sorted(e["task"] for e in entries) == sorted(map(int, ids))
        assert {e["kind"] for e in entries} == {"CREATED"}


@pytest.fixture
def serving_gc() -> Any:
    """The collector as the serving process keeps it (gateway.heap: the start-up heap frozen, then what survives
    each middle collection), undone after: without it the test process's collections, not the gateway's work,
    would dominate what is timed."""
    freeze_startup_heap()
    upkeep = HeapUpkeep(lambda: (0, 0))
    upkeep.install()
    yield
    upkeep.uninstall()
    gc.unfreeze()


STALL_S = 0.25
"""Longest the gateway's event loop may work in one go, holding up a /healthz, while a large create runs."""


async def healthz_waits_during(
    port: int, request: dict[str, Any], work: Callable[[], Awaitable[httpx.Response]] | None = None
) -> tuple[httpx.Response, list[float]]:
    """The answer to `request` (httpx.AsyncClient.request's keyword arguments) sent to the gateway on `port`,
    or what `work` returns when given (it is run instead), and, for each /healthz sent meanwhile one after
    another, how much CPU time the gateway's event loop spent while that /healthz waited for its answer.

    CPU time, not the wait itself: a stall is the loop working without a turn for anything else, and the CPU
    time its thread used is that work, whatever else the machine runs. On a loaded machine a /healthz also waits
    for a core, which says nothing about the gateway. /healthz is asked from a thread of its own: a client in
    the gateway's event loop would wait with it, unseen."""
    loop_clock = time.pthread_getcpuclockid(threading.get_ident())  # the gateway serves in this test's loop
    busy: list[float] = []
    sending = threading.Event()
    base = f"http://127.0.0.1:{port}"

    def probe() -> None:
        with httpx.Client(base_url=base, timeout=120) as health:
            health.get("/healthz")  # connected before it counts
            sending.set()
            while sending.is_set():
                started = time.clock_gettime(loop_clock)
                assert health.get("/healthz").status_code == 200
                busy.append(time.clock_gettime(loop_clock) - started)
                time.sleep(0.01)

    probing = threading.Thread(target=probe)
    probing.start()
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=120) as client:
        await asyncio.to_thread(sending.wait, 30)
        try:
            response = await (work() if work is not None else client.request(**request))
        finally:
            sending.clear()
            await asyncio.to_thread(probing.join)
    return response, busy


async def test_a_large_create_answered_in_xml_does_not_stall_other_requests(live, serving_gc):
    """While a 10,000-task create is answered in XML, /healthz keeps answering within STALL_S (an XML body of
    that size is parsed in a worker thread for the same reason). The XML answer took 0.3-0.6 s of the event
    loop's time in one go, during which every other request of the gateway waited."""
    tasks = [{"name": f"x{i}", "job-id": "xml", "status": "READY", "description": "d" * 100} for i in range(LARGE)]
    headers = {"Accept": "application/xml"}
    request = {"method": "POST", "url": "/tracking/task", "json": {"tasks": tasks}, "headers": headers}
    response, waits = await healthz_waits_during(live, request)
    assert response.status_code == 200
    assert response.text.count("<task>") == LARGE
    assert max(waits) < STALL_S, f"the event loop worked {max(waits):.3f} s in one go during the create"


async def test_two_creates_giving_one_id_far_apart_one_wins_whole_and_the_other_leaves_nothing(
    tiny_slices, client, raw_db
):
    first = {"tasks": [{"id": 100 + i, "job-id": "a"} for i in range(10)]}
    second = {"tasks": [{"id": 200 + i, "job-id": "b"} for i in range(8)] + [{"id": 105, "job-id": "b"}]}
    responses = await asyncio.gather(*(client.post("/tracking/task", json=body) for body in (first, second)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 400], [response.text for response in responses]
    loser = next(response for response in responses if response.status_code == 400)
    assert "105" in loser.json()["message"]
    winner_job = "a" if responses[0].status_code == 200 else "b"
    stored = await raw_db.tasks.find({}, {"job-id": 1}).to_list(None)
    assert {doc["job-id"] for doc in stored} == {winner_job}
    assert len(stored) == (10 if winner_job == "a" else 9)


async def test_a_tool_taking_a_server_id_while_the_create_is_in_flight_leaves_one_of_them_whole(
    tiny_slices, client, raw_db, monkeypatch
):
    """While the insert is in flight (its answer being rendered), a tool writes the id the create gave its eighth
    task, without moving the counter. One of two things is right, depending on which MongoDB sees first: the
    create's insert meets the tool's task, is rolled back whole, tried again and goes on under fresh ids with the
    tool's task untouched; or the tool's write meets the create's uncommitted task, waits for its commit and is
    refused as a duplicate. Either way the create is whole once and answers what reading gives."""
    writes: list[asyncio.Task[Any]] = []
    render = task_to_api

    def render_while_a_tool_writes(doc: Any, linked: Any = None) -> dict[str, Any]:
        if not writes:
            taken = {"_id": Int64(int(doc["_id"]) + 7), "name": "tool's", "nexts": [], "previous": []}
            writes.append(asyncio.ensure_future(raw_db.tasks.insert_one(taken)))
        return render(doc, linked)

    monkeypatch.setattr(routes, "task_to_api", render_while_a_tool_writes)
    response = await client.post(
        "/tracking/task", json={"tasks": [{"name": f"n{i}", "job-id": "j"} for i in range(10)]}
    )
    assert response.status_code == 200, response.text
    (tool,) = await asyncio.gather(*writes, return_exceptions=True)
    answered = response.json()["tasks"]
    assert [item["name"] for item in answered] == [f"n{i}" for i in range(10)]
    ids = [item["id"] for item in answered]
    if isinstance(tool, DuplicateKeyError):
        assert ids == list(range(1, 11))
        assert await raw_db.tasks.count_documents({"name": "tool's"}) == 0
    else:
        assert ids == list(range(11, 21))  # 1-10 were the first try's: a gap
        assert await raw_db.tasks.count_documents({"name": "tool's"}) == 1
    monkeypatch.setattr(routes, "task_to_api", render)
    for item in answered:
        assert (await client.get(f"/tracking/task/{item['id']}")).json() == item
    assert await raw_db.tasks.count_documents({"job-id": "j"}) == 10


async def test_the_xml_answer_of_a_navigable_create_is_what_reading_each_task_in_xml_gives(tiny_slices, client):
    inner = {"name": "inner", "type": NAVIGABLE, "nexts": {"tasks": [{"name": "deep-1"}, {"name": "deep-2"}]}}
    children = [{"name": f"child-{i}", "status": "READY"} for i in range(7)] + [inner]
    body = {"tasks": [{"name": "top", "type": NAVIGABLE, "job-id": "x", "nexts": {"tasks": children}}, {"name": "z"}]}
    xml = {"Accept": "application/xml"}
    response = await client.post("/tracking/task", json=body, headers=xml)
    assert response.status_code == 200, response.text
    answered = xmltodict.parse(response.content)["tasks"]["task"]
    assert len(answered) == 12
    for item in answered:
        read = await client.get(f"/tracking/task/{item['id']}", headers=xml)
        assert xmltodict.parse(read.content)["task"] == item


@pytest.mark.parametrize("after_s", [0, 0.05, 0.1, 0.2, 0.4])
async def test_a_create_over_a_websocket_closed_mid_create_is_whole_or_absent_and_holds_nothing(
    mongo_uri, tmp_path, raw_db, caplog, no_transaction_left, after_s
):
    """`createTasks` sent over the GraphQL websocket, which is closed `after_s` once the create's transaction
    is open in MongoDB: Strawberry cancels the operation wherever it is (the insert in flight, the commit). The
    tasks are all stored or none, nothing stays open in MongoDB, and nothing is logged as an unhandled error.
    The create is large enough to be cut mid-way: its message (a few MB) past the default WebSocket bound. Its
    store has a deadline of minutes: on a loaded machine, turning 10,000 tasks into input objects took the
    default ten seconds, and the create was refused before its transaction opened."""
    patient = await GraphStore.open(mongo_uri, TEST_DB, timeout_ms=120_000)
    try:
        app, settings = gateway_app(patient, tmp_path, websocket_max_message_bytes=16 * 1024 * 1024)
        async with served(app, settings) as live:
            await _closed_mid_create(live, raw_db, caplog, after_s)
    finally:
        await patient.close()


async def _closed_mid_create(live: int, raw_db: Any, caplog: pytest.LogCaptureFixture, after_s: float) -> None:
    mutation = "mutation($tasks: [TaskInput!]!) { createTasks(tasks: $tasks) { id } }"
    tasks = [{"name": f"w{i}", "jobId": "ws", "description": "d" * 200} for i in range(LARGE)]
    with caplog.at_level(logging.WARNING):
        async with connect(f"ws://127.0.0.1:{live}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": TOKEN}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            payload = {"query": mutation, "variables": {"tasks": tasks}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            while not await open_transactions(raw_db):  # polled closely: the inserts take a few 100 ms
                with contextlib.suppress(TimeoutError):  # an answer before its transaction opened is a refusal
                    pytest.fail(f"answered before its transaction opened: {await asyncio.wait_for(ws.recv(), 0.005)}")
            await asyncio.sleep(after_s)

        async def closed() -> bool:  # MongoDB stops a killed insert of thousands of tasks within a second or so
            return await open_transactions(raw_db) == []

        await eventually(closed, timeout=5, what="no transaction left open")
        stored = await raw_db.tasks.count_documents({"job-id": "ws"})
        assert stored in (0, LARGE)
        await asyncio.sleep(0.5)
        gc.collect()
        await asyncio.sleep(0.1)
    assert await raw_db.tasks.count_documents({"job-id": "ws"}) == stored
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR or "never retrieved" in r.getMessage()]
    assert not unhandled, [r.getMessage() for r in unhandled]


@pytest.mark.parametrize("accept", ["application/json", "application/xml"])
async def test_an_answer_is_field_for_field_what_each_read_gives_dates_nulls_and_order_included(
    tiny_slices, client, accept
):
    """Dates given with an offset, microseconds or as epoch milliseconds, nulls, a field equal to its default,
    a navigable task whose nexts land in the next slices: each task of the answer has the same fields, values
    and order as its GET."""
    nexts = [{"name": f"c{i}", "start-time": "2026-01-01T00:00:00.999999Z", "type": None} for i in range(5)]
    tasks = [
        {"name": "a", "start-time": "2026-01-01T00:00:00.123456+01:00", "finish-time": 1767225600123, "status": None},
        {
            "name": "b",
            "type": NAVIGABLE,
            "job-id": "z",
            "number-of-retries": 3,
            "root": False,
            "nexts": {"tasks": nexts},
        },
        {"name": "é\u202e\r\n\t x", "finish-time": "9999-12-31T23:59:59.999999Z", "workflow-id": ""},
    ]
    response = await client.post("/tracking/task", json={"tasks": tasks}, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    if accept == "application/json":
        answered = response.json()["tasks"]
    else:
        answered = xmltodict.parse(response.content)["tasks"]["task"]
    assert len(answered) == 8
    for item in answered:
        read = await client.get(f"/tracking/task/{item['id']}", headers={"Accept": accept})
        stored = read.json() if accept == "application/json" else xmltodict.parse(read.content)["task"]
        assert list(stored.items()) == list(item.items())


async def test_a_large_create_and_its_change_events_do_not_stall_other_requests(live, serving_gc, raw_db):
    """A 10,000-task JSON create with a subscription on its job (and the gateway's history writer) reading its
    10,000 change events afterwards: /healthz keeps answering within STALL_S throughout."""
    tasks = [{"name": f"e{i}", "job-id": "ev", "status": "READY", "description": "d" * 1000} for i in range(LARGE)]
    request: dict[str, Any] = {"method": "POST", "url": "/tracking/task", "json": {"tasks": tasks}}
    selection = "kind taskId cursor task { status name }"
    async with _subscription(live, {"jobId": "ev"}, TOKEN, selection, until_live=True) as ws:

        async def create_then_read_events() -> httpx.Response:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH, timeout=120) as rest:
                response = await rest.request(**request)
            events = [await next_event(ws, timeout=60) for _ in range(LARGE)]
            assert len({event["taskId"] for event in events}) == LARGE
            await asyncio.sleep(0.5)
            return response

        response, waits = await healthz_waits_during(live, request, create_then_read_events)
    assert response.status_code == 200
    assert max(waits) < STALL_S, f"the event loop worked {max(waits):.3f} s in one go during the create or its events"
