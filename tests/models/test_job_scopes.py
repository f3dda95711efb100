"""Job scopes: a token created with --jobs sees and changes only the tasks of jobs starting with its prefixes, in
every interface. Out of scope, REST reads and writes are 404 (existence is not revealed), creates 403, links to
tasks outside 404; GraphQL's task, tasks, taskHistory and job are null or empty, jobs lists its jobs only;
mutations are refused as REST refuses them; subscriptions deliver its jobs' events only. Tasks without a job
are outside every scope.

The two tables hold one entry per REST operation and per GraphQL root field, and are checked against the app's
routes and the schema: a new operation or field without an entry here fails."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bson.int64 import Int64
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from graphql_schema.schema import build_schema
from models import GraphStore
from models.connection import make_client
from tests.conftest import TEST_DB
from tests.helpers import AUTH, gateway_app, lifespan_client, next_event, served, subscription

SCOPE = "team-a-"
# Task 1 (team-a-1) -> task 2 (team-a-1) -> task 3 (other-1); task 4 has no job.
SEED_DOCS: list[dict[str, Any]] = [
    {"_id": 1, "job-id": "team-a-1", "name": "a1", "status": "READY", "nexts": [2], "previous": [], "root": True},
    {"_id": 2, "job-id": "team-a-1", "name": "a2", "status": "READY", "nexts": [3], "previous": [1], "root": False},
    {"_id": 3, "job-id": "other-1", "name": "o1", "status": "READY", "nexts": [], "previous": [2], "root": True},
    {"_id": 4, "name": "jobless", "status": "READY", "nexts": [], "previous": [], "root": True},
]


def seed() -> list[dict[str, Any]]:
    """SEED_DOCS as stored: ids are int64s."""
    return [
        {
            **doc,
            "_id": Int64(doc["_id"]),
            "nexts": list(map(Int64, doc["nexts"])),
            "previous": list(map(Int64, doc["previous"])),
        }
        for doc in SEED_DOCS
    ]


# ---- REST: (method, path template) -> requests outside the scope and the status each must get ------------------

REST_OUTSIDE: dict[tuple[str, str], list[tuple[str, dict[str, Any], int]]] = {
    ("GET", "/tracking/task/{taskId}"): [("/tracking/task/3", {}, 404), ("/tracking/task/4", {}, 404)],
    ("PUT", "/tracking/task/{taskId}"): [
        ("/tracking/task/3", {"json": {"status": "DONE"}}, 404),
        ("/tracking/task/1", {"json": {"job-id": "other-2"}}, 403),  # moving it out of the scope
        ("/tracking/task/1", {"json": {"job-id": None}}, 403),  # into no job: outside every scope
    ],
    ("DELETE", "/tracking/task/{taskId}"): [("/tracking/task/3", {}, 404), ("/tracking/task/4", {}, 404)],
    ("POST", "/tracking/task"): [
        ("/tracking/task", {"json": {"tasks": [{"job-id": "other-2", "name": "x"}]}}, 403),
        ("/tracking/task", {"json": {"tasks": [{"name": "no job"}]}}, 403),
        ("/tracking/task", {"json": {"tasks": [{"job-id": "team-a-2"}, {"job-id": "other-2"}]}}, 403),
        ("/tracking/task", {"json": {"tasks": [{"job-id": "team-a-2", "nexts": {"tasks": [{"job-id": "o"}]}}]}}, 403),
    ],
    ("GET", "/tracking/{jobId}/task/roots"): [],  # answered below: an out-of-scope job is an empty list
    ("GET", "/tracking/task/{taskId}/next"): [("/tracking/task/3/next", {}, 404)],
    ("PUT", "/tracking/task/{taskId}/next"): [
        ("/tracking/task/1/next?nextTaskId=3", {}, 404),
        ("/tracking/task/3/next?nextTaskId=1", {}, 404),
        ("/tracking/task/1/next?nextTaskId=4", {}, 404),
    ],
    ("DELETE", "/tracking/task/{taskId}/next"): [("/tracking/task/2/next?nextTaskId=3", {}, 404)],
    ("GET", "/tracking/task/{taskId}/previous"): [("/tracking/task/3/previous", {}, 404)],
    ("PUT", "/tracking/task/{taskId}/previous"): [("/tracking/task/2/previous?prevTaskId=4", {}, 404)],
    ("DELETE", "/tracking/task/{taskId}/previous"): [("/tracking/task/3/previous?prevTaskId=2", {}, 404)],
}

# ---- GraphQL: root field -> an operation outside the scope and what it must answer ------------------------------

GRAPHQL_OUTSIDE: dict[str, tuple[str, Any]] = {
    "task": ('{ task(id: "3") { id } }', {"task": None}),
    "tasks": ('{ tasks(ids: ["3", "1", "4"]) { id } }', {"tasks": [None, {"id": "1"}, None]}),
    "taskHistory": ('{ taskHistory(id: "3") { kind } }', {"taskHistory": []}),
    "job": ('{ job(id: "other-1") { id taskCount } }', {"job": None}),
    "jobs": ("{ jobs(first: 10) { edges { node { id } } } }", {"jobs": {"edges": [{"node": {"id": "team-a-1"}}]}}),
    "doneStatuses": ("{ doneStatuses }", None),  # no task data: the same for every caller
    "eventCursor": ('{ eventCursor(jobId: "other-1") }', None),  # a cursor like any unknown job's: events filtered
    "createTasks": ('mutation { createTasks(tasks: [{jobId: "other-2"}]) { id } }', "FORBIDDEN"),
    "updateTask": ('mutation { updateTask(id: "3", patch: {status: "DONE"}) { id } }', "NOT_FOUND"),
    "deleteTask": ('mutation { deleteTask(id: "3") }', "NOT_FOUND"),
    "addNexts": ('mutation { addNexts(id: "1", nextIds: ["3"]) { id } }', "NOT_FOUND"),
    "removeNexts": ('mutation { removeNexts(id: "2", nextIds: ["3"]) }', "NOT_FOUND"),
    "addPrevious": ('mutation { addPrevious(id: "3", previousIds: ["2"]) { id } }', "NOT_FOUND"),
    "removePrevious": ('mutation { removePrevious(id: "3", previousIds: ["2"]) }', "NOT_FOUND"),
    "taskEvents": ("subscription", None),  # test_subscriptions_deliver_only_the_scope_s_events
}


@pytest.fixture
async def scoped(store, raw_db, tmp_path):
    """A gateway on the seeded tasks, and a token limited to SCOPE's jobs."""
    await raw_db.tasks.insert_many(seed())
    secret = await store.named_tokens().create("team-a", write=True, jobs=(SCOPE,))
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, {"X-Auth-Token": secret}) as http:
        yield app, http, secret


async def stored(raw_db) -> list[dict[str, Any]]:
    return await raw_db.tasks.find({}, {"update-timestamp": 0}).sort("_id").to_list(None)


def test_the_tables_cover_every_rest_operation_and_graphql_root_field(tmp_path, store):
    app, _ = gateway_app(store, tmp_path)
    paths = app.openapi()["paths"]
    operations = {
        (method.upper(), path) for path, methods in paths.items() if path.startswith("/tracking") for method in methods
    }
    assert operations == set(REST_OUTSIDE)
    schema = build_schema(12, 30, 5000)._schema
    roots = (schema.query_type, schema.mutation_type, schema.subscription_type)
    fields = {name for kind in roots if kind is not None for name in kind.fields}
    assert fields == set(GRAPHQL_OUTSIDE)


async def test_rest_outside_the_scope_is_not_found_or_forbidden_and_changes_nothing(scoped, raw_db):
    _, http, _ = scoped
    before = await stored(raw_db)
    for (method, _template), requests in REST_OUTSIDE.items():
        for path, options, status in requests:
            answer = await http.request(method, path, **options)
            assert answer.status_code == status, (method, path, answer.text)
            if status == 403:
                assert SCOPE in answer.json()["message"]
    assert await stored(raw_db) == before
    roots = await http.get("/tracking/other-1/task/roots")
    assert roots.status_code == 200 and roots.json()["tasks"] == []


async def test_rest_inside_the_scope_works_and_hides_links_outside(scoped, raw_db):
    _, http, _ = scoped
    assert (await http.get("/tracking/task/2")).json()["id"] == 2
    assert [task["id"] for task in (await http.get("/tracking/task/2/next")).json()["tasks"]] == []
    job = (await http.get("/tracking/team-a-1/task/roots")).json()["tasks"]
    assert [task["id"] for task in job] == [1, 2]
    created = await http.post("/tracking/task", json={"tasks": [{"job-id": "team-a-2", "nexts": {"tasks": [{}]}}]})
    assert created.status_code == 200, created.text
    assert {task["job-id"] for task in created.json()["tasks"]} == {"team-a-2"}  # the child inherits it
    assert (await http.put("/tracking/task/1", json={"status": "DONE"})).status_code == 200
    assert (await http.put("/tracking/task/1", json={"job-id": "team-a-9"})).status_code == 200
    assert (await http.delete("/tracking/task/2/next", params={"nextTaskId": 1})).status_code == 204


async def test_graphql_outside_the_scope_answers_as_for_unknown_tasks_and_changes_nothing(scoped, raw_db):
    _, http, _ = scoped
    before = await stored(raw_db)
    for field, (operation, expected) in GRAPHQL_OUTSIDE.items():
        if operation == "subscription":
            continue
        answer = (await http.post("/graphql", json={"query": operation})).json()
        if isinstance(expected, str):
            assert answer["errors"][0]["extensions"]["code"] == expected, (field, answer)
        elif expected is not None:
            assert answer.get("data") == expected, (field, answer)
        else:
            assert "errors" not in answer, (field, answer)
    assert await stored(raw_db) == before
    walks = await http.post("/graphql", json={"query": '{ task(id: "1") { nexts { id } descendants { id } } }'})
    assert walks.json()["data"]["task"] == {"nexts": [{"id": "2"}], "descendants": [{"id": "2"}]}
    by_status = '{ jobs(filter: {status: ["READY"]}) { edges { node { id } } } }'
    listed = (await http.post("/graphql", json={"query": by_status})).json()["data"]["jobs"]["edges"]
    assert listed == [{"node": {"id": "team-a-1"}}]  # the status filter's own query is scoped too
    prefixed = '{ jobs(filter: {idPrefix: "other"}) { edges { node { id } } } }'
    assert (await http.post("/graphql", json={"query": prefixed})).json()["data"]["jobs"]["edges"] == []
    whole = await http.post("/graphql", json={"query": '{ job(id: "team-a-1") { taskCount tasks { id } } }'})
    assert whole.json()["data"]["job"] == {"taskCount": 2, "tasks": [{"id": "1"}, {"id": "2"}]}


async def test_the_environment_s_tokens_and_unscoped_named_ones_see_everything(scoped, store):
    app, _, _ = scoped
    every = await store.named_tokens().create("every", write=False)
    async with lifespan_client(app) as fresh:  # a new gateway: the token created above is loaded at start
        for headers in (AUTH, {"X-Auth-Token": every}):
            query = {"query": '{ tasks(ids: ["1", "3", "4"]) { id } }'}
            answer = await fresh.post("/graphql", json=query, headers=headers)
            assert answer.json()["data"]["tasks"] == [{"id": "1"}, {"id": "3"}, {"id": "4"}]


async def test_subscriptions_deliver_only_the_scope_s_events(store, raw_db, tmp_path):
    await raw_db.tasks.insert_many(seed())
    secret = await store.named_tokens().create("team-a", write=True, jobs=(SCOPE,))
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        subscription(
            port, {}, secret, "kind taskId changedFields task { id jobId description }", until_live=True
        ) as ws,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as writer,
    ):
        for task_id in (3, 4, 1):  # outside, without a job, inside: only the last one comes
            changed = await writer.put(f"/tracking/task/{task_id}", json={"status": "RUNNING"})
            assert changed.status_code == 200
        event = await next_event(ws)
        assert event["task"]["id"] == "1"
        # Seen leaving the scope, but not as it now is: its new job and values are another scope's.
        moved = await writer.put("/tracking/task/1", json={"job-id": "other-3", "description": "other's plan"})
        assert moved.status_code == 200
        left = await next_event(ws)
        assert left == {
            "kind": "UPDATED",
            "taskId": "1",
            "changedFields": ["jobId"],  # what else the move changed is not its to know
            "task": None,
        }
        assert (await writer.put("/tracking/task/1", json={"status": "DONE"})).status_code == 200  # gone: unseen
        assert (await writer.put("/tracking/task/2", json={"status": "DONE"})).status_code == 200
        assert (await next_event(ws))["task"]["id"] == "2"


class TaskQueries(CommandListener):
    """The filter or pipeline of every find and aggregate sent on `tasks`."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def started(self, event: CommandStartedEvent) -> None:
        command = event.command
        if event.command_name in ("find", "aggregate") and command.get(event.command_name) == "tasks":
            self.sent.append(command.get("filter", command.get("pipeline")))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


async def test_the_scope_is_in_every_query_mongodb_is_sent(mongo_uri, store, raw_db, tmp_path):
    """Filtered by MongoDB, not after reading: every read of tasks a scoped caller makes names its job range."""
    await raw_db.tasks.insert_many(seed())
    secret = await store.named_tokens().create("team-a", write=True, jobs=(SCOPE,))
    listener = TaskQueries()
    client = make_client(mongo_uri, event_listeners=[listener])
    try:
        app, _ = gateway_app(GraphStore(client, client[TEST_DB]), tmp_path)
        async with lifespan_client(app, {"X-Auth-Token": secret}) as http:
            listener.sent.clear()
            assert (await http.get("/tracking/task/3")).status_code == 404
            assert (await http.get("/tracking/task/2/next")).status_code == 200
            query = (
                '{ tasks(ids: ["1", "3"]) { id descendants { id } history { kind } } jobs { edges { node { id } } } }'
            )
            assert "errors" not in (await http.post("/graphql", json={"query": query})).json()
            job = (
                '{ job(id: "team-a-1") { taskCount tasks { id } levels { depth } criticalPath { id } '
                "taskPage(depth: 0) { edges { node { id } } } } }"
            )
            assert "errors" not in (await http.post("/graphql", json={"query": job})).json()
    finally:
        await client.close()
    scope_range = {"job-id": {"$gte": SCOPE, "$lt": "team-a."}}
    no_array = {"job-id": {"$not": {"$type": "array"}}}  # a tool's ["other-1", "team-a-1"] is in no scope
    assert listener.sent
    for sent in listener.sent:
        assert str(scope_range) in str(sent), sent
        # The jobs list alone groups by the stored job-id itself: an array is a group of its own, never listed.
        listing = isinstance(sent, list) and any(stage.get("$group", {}).get("_id") == "$job-id" for stage in sent)
        assert listing or str(no_array) in str(sent), sent


async def test_a_prefix_ending_in_the_last_code_points_is_a_scope_too(store, raw_db):
    """A JWT's jobs claim may hold any non-empty string: a prefix ending in U+10FFFF made its range's upper bound
    chr(0x110000) (ValueError), one ending in U+D7FF the surrogate U+D800 MongoDB cannot be sent
    (UnicodeEncodeError): every read of such a caller failed with an internal error instead of answering."""
    jobs = {1: "\U0010ffffjob", 2: "x\U0010ffff\U0010ffff", 3: "\ud7ffjob", 4: "\ue000job", 5: "y"}
    docs = [{"_id": Int64(task_id), "job-id": job, "nexts": [], "previous": []} for task_id, job in jobs.items()]
    await raw_db.tasks.insert_many(docs)
    for prefix, expected in (("\U0010ffff", {1}), ("x\U0010ffff", {2}), ("\ud7ff", {3}), ("\ue000", {4})):
        found = await store.scoped((prefix,)).get_tasks(list(jobs))
        assert set(found) == expected, prefix
