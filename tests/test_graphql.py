"""GraphQL through HTTP and WebSocket on the real MongoDB: fields, traversals, mutations, bounds, batching,
and a subscription that sees a change made through REST."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import uvicorn
from bson.int64 import Int64
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.profiler import count_task_reads
from gateway.embedded import free_port
from tests.helpers import AUTH, TOKEN, assert_link_invariant, gateway_app, lifespan_client, subscribed

TASK_FIELDS = """
  id status creationTimestamp updateTimestamp jobId root name description startTime finishTime lock workflowId
  matchId rollbackStatus executionCode executionDescription initialArtifactStatus type mainArtifact finalStatus
  condition path runningStatus workflow behaviourOnError numberOfRetries waitBetweenRetries codesToDoRollback
  rollbackWorkflow mappingList outputMappingList orderBy definitionId
"""
EVERY_INPUT = {
    "status": "RUNNING",
    "jobId": "job-1",
    "root": True,
    "name": "deploy",
    "description": "d",
    "startTime": "2026-11-22T18:00:00.000Z",
    "finishTime": "2026-11-22T18:30:00.250Z",
    "lock": "L",
    "workflowId": "wf",
    "matchId": "m",
    "rollbackStatus": "NONE",
    "executionCode": "0",
    "executionDescription": "ok",
    "initialArtifactStatus": "NEW",
    "type": "execution-task",
    "mainArtifact": "vnf",
    "finalStatus": "DONE",
    "condition": "c",
    "path": "/p",
    "runningStatus": "R",
    "workflow": "w",
    "behaviourOnError": "STOP",
    "numberOfRetries": 3,
    "waitBetweenRetries": 1000,
    "codesToDoRollback": "1,2",
    "rollbackWorkflow": "rw",
    "mappingList": "ml",
    "outputMappingList": "oml",
    "orderBy": "name",
    "definitionId": "def",
}


@pytest.fixture
async def http(store, tmp_path):
    async with lifespan_client(gateway_app(store, tmp_path)[0], AUTH) as c:
        yield c


async def gql(http, query: str, variables: dict | None = None, expect_errors: bool = False) -> dict:
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    body = response.json()
    if not expect_errors:
        assert "errors" not in body, body
    return body


async def rest_create(http, *tasks: dict) -> None:
    response = await http.post("/tracking/task", json={"tasks": list(tasks)})
    assert response.status_code == 200, response.text


def ids_of(tasks: list[dict]) -> list[int]:
    return [int(t["id"]) for t in tasks]


# ---- queries ---------------------------------------------------------------------------------------------------


async def test_every_task_field_in_camel_case(http):
    created = await gql(
        http,
        f"mutation($t: [TaskInput!]!) {{ createTasks(tasks: $t) {{ {TASK_FIELDS} }} }}",
        {"t": [{"id": "5", **EVERY_INPUT}]},
    )
    (task,) = created["data"]["createTasks"]
    fetched = (await gql(http, f'{{ task(id: "5") {{ {TASK_FIELDS} }} }}'))["data"]["task"]
    assert fetched == task
    assert {k: v for k, v in fetched.items() if k not in ("id", "creationTimestamp", "updateTimestamp")} == EVERY_INPUT
    assert fetched["id"] == "5"
    assert fetched["creationTimestamp"].endswith("Z")
    rest = (await http.get("/tracking/task/5")).json()
    assert rest["creation-timestamp"] == fetched["creationTimestamp"]


async def test_unknown_task_is_null_and_tasks_keep_order(http):
    await rest_create(http, {"id": 1}, {"id": 2})
    body = await gql(http, '{ task(id: "9") { id } tasks(ids: ["2", "9", "1"]) { id } }')
    assert body["data"] == {"task": None, "tasks": [{"id": "2"}, None, {"id": "1"}]}


async def test_nexts_and_previous_with_filters(http):
    await rest_create(
        http,
        {"id": 1},
        {"id": 2, "status": "DONE"},
        {"id": 3, "status": "FAILED", "type": "execution-task"},
        {"id": 4, "status": "DONE", "type": "execution-task"},
    )
    await http.put("/tracking/task/1/next?nextTaskId=4&nextTaskId=3&nextTaskId=2")
    body = await gql(
        http,
        """{ task(id: "1") { all: nexts { id } done: nexts(status: ["DONE"]) { id }
             doneOrFailed: nexts(status: ["DONE", "FAILED"], type: "execution-task") { id previous { id } } } }""",
    )
    task = body["data"]["task"]
    assert ids_of(task["all"]) == [2, 3, 4]
    assert ids_of(task["done"]) == [2, 4]
    assert ids_of(task["doneOrFailed"]) == [3, 4]
    assert task["doneOrFailed"][0]["previous"] == [{"id": "1"}]


async def test_descendants_and_ancestors_on_a_diamond_are_breadth_first_and_unique(http):
    # 1 -> 2, 1 -> 3, 2 -> 4, 3 -> 4, 4 -> 5
    await rest_create(http, *({"id": i, "status": "S" if i % 2 else "T"} for i in range(1, 6)))
    for a, b in [(1, 2), (1, 3), (2, 4), (3, 4), (4, 5)]:
        await http.put(f"/tracking/task/{a}/next?nextTaskId={b}")
    body = await gql(
        http,
        """{ top: task(id: "1") { descendants { id } two: descendants(maxDepth: 2) { id }
                                   odd: descendants(status: ["S"]) { id } none: descendants(maxDepth: 0) { id } }
             bottom: task(id: "5") { ancestors { id } one: ancestors(maxDepth: 1) { id } } }""",
    )
    top, bottom = body["data"]["top"], body["data"]["bottom"]
    assert ids_of(top["descendants"]) == [2, 3, 4, 5]
    assert ids_of(top["two"]) == [2, 3, 4]
    assert ids_of(top["odd"]) == [3, 5]
    assert top["none"] == []
    assert sorted(ids_of(bottom["ancestors"])) == [1, 2, 3, 4]
    assert ids_of(bottom["ancestors"])[0] == 4
    assert ids_of(bottom["one"]) == [4]


async def test_traversals_are_safe_on_cycles_written_directly(http, raw_db):
    # ops tooling wrote a cycle 1 -> 2 -> 3 -> 1 and a self-link on 3, and a dangling link to 99
    docs = [
        {"_id": Int64(1), "job-id": "c", "nexts": [Int64(2)], "previous": [Int64(3)]},
        {"_id": Int64(2), "job-id": "c", "nexts": [Int64(3)], "previous": [Int64(1)]},
        {"_id": Int64(3), "job-id": "c", "nexts": [Int64(1), Int64(3), Int64(99)], "previous": [Int64(2), Int64(3)]},
    ]
    await raw_db.tasks.insert_many(docs)
    body = await gql(
        http,
        '{ task(id: "1") { descendants { id } ancestors { id } nexts { nexts { nexts { id } } } } '
        '  job(id: "c") { edges { from to } } }',
    )
    task = body["data"]["task"]
    assert ids_of(task["descendants"]) == [2, 3]
    assert ids_of(task["ancestors"]) == [3, 2]
    assert task["nexts"][0]["nexts"][0]["nexts"] == [{"id": "1"}, {"id": "3"}]
    edges = {(e["from"], e["to"]) for e in body["data"]["job"]["edges"]}
    assert edges == {("1", "2"), ("2", "3"), ("3", "1"), ("3", "3")}


async def test_job_graph_with_roots_edges_and_status_counts(http):
    await rest_create(
        http,
        {"id": 1, "job-id": "J", "status": "DONE", "nexts": {"tasks": [{"id": 2, "status": "RUNNING"}]}},
        {"id": 3, "job-id": "J", "status": "DONE"},
        {"id": 4, "job-id": "J"},
        {"id": 5, "job-id": "other", "status": "DONE"},
    )
    await http.put("/tracking/task/2/next?nextTaskId=5")  # leaves the job: not an edge of it
    body = await gql(
        http,
        """{ job(id: "J") { id tasks { id } roots { id } nonRoots: tasks(root: false) { id }
             done: tasks(status: ["DONE"]) { id } edges { from to } statusCounts { status count } }
             missing: job(id: "nope") { id } }""",
    )
    job = body["data"]["job"]
    assert job["id"] == "J"
    assert ids_of(job["tasks"]) == [1, 2, 3, 4]
    assert ids_of(job["roots"]) == [1, 3, 4]
    assert ids_of(job["nonRoots"]) == [2]
    assert ids_of(job["done"]) == [1, 3]
    assert job["edges"] == [{"from": "1", "to": "2"}]
    assert job["statusCounts"] == [
        {"status": None, "count": 1},
        {"status": "DONE", "count": 2},
        {"status": "RUNNING", "count": 1},
    ]
    assert body["data"]["missing"] is None


async def test_a_thousand_task_job_graph_in_one_query(http, raw_db):
    # 10 levels of 100 tasks; each task links to two tasks of the next level
    docs = []
    for level in range(10):
        for index in range(100):
            task_id = level * 100 + index + 1
            nexts = (
                [] if level == 9 else sorted({(level + 1) * 100 + index + 1, (level + 1) * 100 + (index + 1) % 100 + 1})
            )
            previous = (
                [] if level == 0 else sorted({(level - 1) * 100 + index + 1, (level - 1) * 100 + (index - 1) % 100 + 1})
            )
            docs.append(
                {
                    "_id": Int64(task_id),
                    "job-id": "big",
                    "status": ["A", "B"][task_id % 2],
                    "root": level == 0,
                    "type": "task",
                    "nexts": [Int64(i) for i in nexts],
                    "previous": [Int64(i) for i in previous],
                }
            )
    await raw_db.tasks.insert_many(docs)
    await assert_link_invariant(raw_db)
    started = time.monotonic()
    body = await gql(http, '{ job(id: "big") { tasks { id status } edges { from to } statusCounts { status count } } }')
    elapsed = time.monotonic() - started
    job = body["data"]["job"]
    assert len(job["tasks"]) == 1000
    assert len(job["edges"]) == 1800
    assert job["statusCounts"] == [{"status": "A", "count": 500}, {"status": "B", "count": 500}]
    print(f"1,000-task job graph in {elapsed:.3f}s")


# ---- batching --------------------------------------------------------------------------------------------------


async def test_a_traversal_costs_one_round_trip_per_level(http, raw_db):
    # a tree: 1 root, 5 children, 25 grandchildren, 125 great-grandchildren
    tasks = [{"id": 1}]
    parents, next_id = [1], 2
    for _ in range(3):
        level = []
        for parent in parents:
            for _ in range(5):
                tasks.append({"id": next_id})
                level.append((parent, next_id))
                next_id += 1
        await rest_create(http, *tasks)
        tasks = []
        for parent, child in level:
            await http.put(f"/tracking/task/{parent}/next?nextTaskId={child}")
        parents = [child for _, child in level]

    async def nested() -> None:
        body = await gql(http, '{ task(id: "1") { nexts { nexts { nexts { id status } } } } }')
        assert len([t for a in body["data"]["task"]["nexts"] for b in a["nexts"] for t in b["nexts"]]) == 125

    async def descendants() -> None:
        body = await gql(http, '{ task(id: "1") { descendants { id previous { id } } } }')
        assert len(body["data"]["task"]["descendants"]) == 155

    assert await count_task_reads(raw_db, nested) == 4  # the task, then one per level
    # the task, one per level (3), and one more for the previous of tasks the walk did not load (the root)
    assert await count_task_reads(raw_db, descendants) <= 5


# ---- mutations -------------------------------------------------------------------------------------------------


async def test_mutations_follow_the_rest_rules(http, raw_db):
    body = await gql(
        http,
        'mutation { createTasks(tasks: [{id: "1", jobId: "m", type: "navigable-execution-task", '
        'nexts: [{name: "child"}]}, {id: "3"}]) { id root jobId nexts { name } } }',
    )
    assert body["data"]["createTasks"] == [
        {"id": "1", "root": True, "jobId": "m", "nexts": [{"name": "child"}]},
        {"id": "4", "root": False, "jobId": "m", "nexts": []},
        {"id": "3", "root": True, "jobId": None, "nexts": []},
    ]
    body = await gql(
        http, 'mutation { addNexts(id: "3", nextIds: ["1"]) { id } addPrevious(id: "4", previousIds: ["3"]) { id } }'
    )
    assert body["data"] == {"addNexts": [{"id": "1"}], "addPrevious": [{"id": "1"}, {"id": "3"}]}
    assert await assert_link_invariant(raw_db) == {(1, 4), (3, 1), (3, 4)}
    body = await gql(
        http, 'mutation { removeNexts(id: "3", nextIds: ["1"]) removePrevious(id: "4", previousIds: ["3"]) }'
    )
    assert body["data"] == {"removeNexts": True, "removePrevious": True}
    assert await assert_link_invariant(raw_db) == {(1, 4)}
    body = await gql(
        http,
        'mutation { updateTask(id: "1", patch: {status: "DONE", jobId: null, numberOfRetries: 2}) '
        "{ status jobId numberOfRetries } }",
    )
    assert body["data"]["updateTask"] == {"status": "DONE", "jobId": None, "numberOfRetries": 2}
    assert (await gql(http, 'mutation { deleteTask(id: "1") }'))["data"] == {"deleteTask": True}
    assert await assert_link_invariant(raw_db) == set()


@pytest.mark.parametrize(
    ("mutation", "code", "fragment"),
    [
        ('deleteTask(id: "9")', "NOT_FOUND", "task 9 not found"),
        ('addNexts(id: "1", nextIds: ["9"]) { id }', "NOT_FOUND", "task 9 not found"),
        ('addNexts(id: "1", nextIds: ["1"]) { id }', "BAD_USER_INPUT", "itself"),
        ('addNexts(id: "2", nextIds: ["1"]) { id }', "BAD_USER_INPUT", "cycle"),
        ('addNexts(id: "1", nextIds: []) { id }', "BAD_USER_INPUT", "nextIds: at least one"),
        ('removePrevious(id: "1", previousIds: ["x"])', "BAD_USER_INPUT", "previousIds: 'x'"),
        ('createTasks(tasks: [{id: "1"}]) { id }', "CONFLICT", "task 1 already exists"),
        ('createTasks(tasks: [{id: "0"}]) { id }', "BAD_USER_INPUT", "tasks[0].id"),
        ('createTasks(tasks: [{startTime: "soon"}]) { id }', "BAD_USER_INPUT", "expected an ISO 8601"),
        ('updateTask(id: "1", patch: {id: "2"}) { id }', "BAD_USER_INPUT", "does not match"),
        ('updateTask(id: "7", patch: {status: "X"}) { id }', "NOT_FOUND", "task 7 not found"),
    ],
)
async def test_mutation_errors_carry_a_code(http, raw_db, mutation, code, fragment):
    await rest_create(http, {"id": 1, "nexts": {"tasks": [{"id": 2}]}})
    before = await raw_db.tasks.find({}).sort("_id").to_list()
    body = await gql(http, f"mutation {{ {mutation} }}", expect_errors=True)
    (error,) = body["errors"]
    assert fragment in error["message"], error
    if "extensions" in error:
        assert error["extensions"]["code"] == code
    else:  # a value the GraphQL layer itself refused (scalar parsing), before any resolver ran
        assert code == "BAD_USER_INPUT"
    assert await raw_db.tasks.find({}).sort("_id").to_list() == before


async def test_internal_errors_are_masked(http, store, monkeypatch, caplog):
    async def broken(ids):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(store, "get_tasks", broken)
    body = await gql(http, '{ task(id: "1") { id } }', expect_errors=True)
    assert body["errors"][0]["message"] == "internal server error"
    assert "secret" not in json.dumps(body)
    assert any("secret internals" in str(record.exc_info) for record in caplog.records)


# ---- auth and bounds -------------------------------------------------------------------------------------------


async def test_a_token_is_required_but_graphiql_opens_in_a_browser(http):
    http.headers.pop("X-Auth-Token")
    response = await http.post("/graphql", json={"query": '{ task(id: "1") { id } }'})
    assert response.status_code == 403
    assert (
        await http.post("/graphql", json={"query": "{ __typename }"}, headers={"X-Auth-Token": "x"})
    ).status_code == 403
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert (await http.get("/graphql?query={__typename}", headers={"Accept": "text/html"})).status_code == 403


@pytest.fixture
async def bounded(store, tmp_path):
    app, _ = gateway_app(
        store, tmp_path, graphql_max_depth=4, graphql_max_aliases=3, graphql_max_tokens=60, graphql_max_traversal=4
    )
    async with lifespan_client(app, AUTH) as c:
        await rest_create(c, *({"id": i, "job-id": "six"} for i in range(1, 7)))
        for i in range(1, 6):
            await c.put(f"/tracking/task/{i}/next?nextTaskId={i + 1}")
        yield c


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ('{ task(id: "1") { nexts { nexts { nexts { nexts { id } } } } } }', "exceeds maximum operation depth of 4"),
        (
            '{ a: task(id: "1") { id } b: task(id: "1") { id } c: task(id: "1") { id } d: task(id: "1") { id } }',
            "holds 4 aliases, more than 3 (TRACKING_GRAPHQL_MAX_ALIASES)",
        ),
        ("{ " + " ".join(f'task(id: "{i}") {{ id name status }}' for i in range(1, 9)) + " }", "token"),
        ('{ task(id: "1") { descendants { id } } }', "more than 4 tasks (TRACKING_GRAPHQL_MAX_TRAVERSAL)"),
        ('{ job(id: "six") { tasks { id } } }', "more than 4 (TRACKING_GRAPHQL_MAX_TRAVERSAL)"),
        ('{ job(id: "six") { edges { from } } }', "page through them with Job.taskPage"),
    ],
)
async def test_each_bound_is_named_when_exceeded(bounded, query, fragment):
    """Each refusal says what is over which bound, and names the setting (TRACKING_*) that bound is."""
    body = await gql(bounded, query, expect_errors=True)
    assert any(fragment in error["message"] for error in body["errors"]), body
    assert all("(TRACKING_GRAPHQL_MAX_" in error["message"] for error in body["errors"]), body


async def test_within_bounds_passes(bounded):
    body = await gql(bounded, '{ task(id: "1") { descendants(maxDepth: 4) { id } } }')
    assert ids_of(body["data"]["task"]["descendants"]) == [2, 3, 4, 5]


# ---- subscriptions ---------------------------------------------------------------------------------------------


@pytest.fixture
async def live(store, tmp_path):
    """The app served by a real uvicorn on loopback, in this event loop (the store's client lives here)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(gateway_app(store, tmp_path)[0], host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    yield port
    server.should_exit = True
    await serving


SUBSCRIBE = 'subscription { taskEvents(jobId: "live") { kind taskId task { id status } } }'


async def subscribe(
    port: int, raw_db, query: str = SUBSCRIBE, init_payload: dict | None = None, headers: dict | None = None
):
    ws = await connect(
        f"ws://127.0.0.1:{port}/graphql",
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers=headers or {},
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": init_payload or {}}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    async with subscribed():
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def next_event(ws, timeout: float = 10.0) -> dict:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert message["type"] == "next", message
    return message["payload"]["data"]["taskEvents"]


async def test_a_subscriber_sees_rest_changes_of_its_job_only(live, raw_db):
    """(How fast is the benchmark's business: bench/ reports the delay from a REST change to its event.)"""
    headers = {"X-Auth-Token": TOKEN}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=headers) as rest:
        await rest.post(
            "/tracking/task",
            json={"tasks": [{"id": 1, "job-id": "live", "status": "READY"}, {"id": 2, "job-id": "elsewhere"}]},
        )
        ws = await subscribe(live, raw_db, init_payload={"X-Auth-Token": TOKEN})
        try:
            await rest.put("/tracking/task/2", json={"status": "IGNORED"})  # another job: not delivered
            response = await rest.put("/tracking/task/1", json={"status": "DONE"})
            assert response.status_code == 200
            event = await next_event(ws, timeout=10)
            assert event == {"kind": "UPDATED", "taskId": "1", "task": {"id": "1", "status": "DONE"}}
            await rest.post("/tracking/task", json={"tasks": [{"id": 3, "job-id": "live"}]})
            assert (await next_event(ws))["kind"] == "CREATED"
            await rest.delete("/tracking/task/3")
            assert await next_event(ws) == {"kind": "DELETED", "taskId": "3", "task": None}
        finally:
            await ws.close()


async def test_a_subscriber_sees_direct_writes_too(live, raw_db):
    ws = await subscribe(
        live, raw_db, query="subscription { taskEvents { kind taskId } }", headers={"X-Auth-Token": TOKEN}
    )
    try:
        await raw_db.tasks.insert_one({"_id": Int64(42), "nexts": [], "previous": []})
        assert await next_event(ws) == {"kind": "CREATED", "taskId": "42"}
    finally:
        await ws.close()


@pytest.mark.parametrize("payload", [{}, {"X-Auth-Token": "wrong"}])
async def test_a_subscription_without_a_valid_token_is_refused(live, payload):
    async with connect(f"ws://127.0.0.1:{live}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403
