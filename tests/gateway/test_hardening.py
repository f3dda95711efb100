"""Every way found to break the gateway with one request or one stored document, as a regression test
through HTTP or GraphQL on the real MongoDB: each gets a fast, clear answer and changes nothing it should not."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import xmltodict
from bson.int64 import Int64

from gateway.settings import load_settings
from models import GraphStore
from models.task import COUNTER_FOLLOWS_IDS_UP_TO, INT64_MAX, SERVER_ID_MAX
from tests.conftest import TEST_DB
from tests.helpers import AUTH, gateway_app, lifespan_client, task
from tests.helpers import graphql as gql

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

XML = {"Content-Type": "application/xml", "Accept": "application/xml", **AUTH}
JSON = {"Content-Type": "application/json"}


@asynccontextmanager
async def gateway(store: GraphStore, tmp_path, **settings) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = gateway_app(store, tmp_path, **settings)
    async with lifespan_client(app, AUTH) as client:
        yield client


@pytest.fixture
async def small_store(mongo_uri, store) -> AsyncIterator[GraphStore]:
    """A second store on the test database with small limits (a gateway configured so: SMALL_LIMITS)."""
    limited = await GraphStore.open(mongo_uri, TEST_DB, limits=load_settings(**SMALL_LIMITS).limits)
    yield limited
    await limited.close()


SMALL_LIMITS = {"max_tasks_per_create": 5, "max_ids_per_request": 3, "max_nesting": 3}


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return body["message"]


def error_code(body: dict) -> str:
    (error,) = body["errors"]
    return error["extensions"]["code"]


# ---- ids: no request can make a later one fail -------------------------------------------------------------------


async def test_a_client_id_at_the_top_of_int64_leaves_server_ids_working(client, raw_db):
    top = await client.post("/tracking/task", json={"tasks": [{"id": INT64_MAX}]})
    assert top.json()["tasks"][0]["id"] == INT64_MAX
    first = (await client.post("/tracking/task", json={"tasks": [{}]})).json()["tasks"][0]["id"]
    assert first == 1
    assert (await client.delete(f"/tracking/task/{INT64_MAX}")).status_code == 204
    again = await client.post("/tracking/task", json={"tasks": [{}, {}]})
    assert [t["id"] for t in again.json()["tasks"]] == [2, 3]
    assert (await raw_db.counters.find_one({"_id": "tasks"}))["seq"] == 3


@pytest.mark.parametrize("client_id", [COUNTER_FOLLOWS_IDS_UP_TO, COUNTER_FOLLOWS_IDS_UP_TO + 1, SERVER_ID_MAX])
async def test_server_ids_stay_within_javascripts_safe_integers(client, client_id):
    await client.post("/tracking/task", json={"tasks": [{"id": client_id}]})
    created = (await client.post("/tracking/task", json={"tasks": [{}]})).json()["tasks"][0]["id"]
    assert created <= SERVER_ID_MAX
    assert created == (client_id + 1 if client_id <= COUNTER_FOLLOWS_IDS_UP_TO else 1)


async def test_client_ids_below_the_ceiling_move_the_counter_whatever_else_the_create_holds(client):
    await client.post("/tracking/task", json={"tasks": [{"id": 5}, {"id": INT64_MAX - 1}]})
    assert (await client.post("/tracking/task", json={"tasks": [{}]})).json()["tasks"][0]["id"] == 6


async def test_a_string_id_written_by_a_tool_does_not_stop_id_allocation(mongo_uri, store, raw_db):
    await raw_db.tasks.insert_one({"_id": "zzz", "nexts": [], "previous": []}, bypass_document_validation=True)
    await raw_db.tasks.insert_one({"_id": 7.0, "nexts": [], "previous": []}, bypass_document_validation=True)
    restarted = await GraphStore.open(mongo_uri, TEST_DB)  # catches the counter up, as a gateway does at start
    try:
        created = await restarted.create_tasks([task(name="after a tool's writes")])
        assert [doc["_id"] for doc in created] == [8]
    finally:
        await restarted.close()


async def test_ids_a_tool_takes_past_the_counter_are_skipped(store, raw_db):
    await raw_db.tasks.insert_many([{"_id": Int64(i), "nexts": [], "previous": []} for i in (1, 2)])
    assert [doc["_id"] for doc in await store.create_tasks([task()])] == [3]


# ---- bodies that used to be 500s ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"tasks":[]}', {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "application/json"}),
        (b"<tasks/>", {"Content-Type": "application/xml"}),
    ],
)
async def test_a_create_without_tasks_is_a_400(client, raw_db, body, headers):
    assert_error(await client.post("/tracking/task", content=body, headers=headers), 400, "at least one task")
    assert await raw_db.tasks.count_documents({}) == 0


async def test_create_tasks_with_an_empty_list_is_a_graphql_error(client, raw_db):
    body = await gql(client, "mutation { createTasks(tasks: []) { id } }")
    assert error_code(body) == "BAD_USER_INPUT"
    assert "at least one task" in body["errors"][0]["message"]
    assert await raw_db.tasks.count_documents({}) == 0


EARLY = "0001-01-01T00:00:00+01:00"


async def test_a_date_before_year_one_in_utc_is_a_400_on_create_and_update(client, raw_db):
    assert_error(await client.post("/tracking/task", json={"tasks": [{"start-time": EARLY}]}), 400, "start-time")
    await client.post("/tracking/task", json={"tasks": [{"id": 1}]})
    assert_error(await client.put("/tracking/task/1", json={"finish-time": EARLY}), 400, "finish-time", "range")
    assert "finish-time" not in await raw_db.tasks.find_one({"_id": 1})


async def test_a_date_before_year_one_in_utc_is_a_graphql_error(client):
    body = await gql(
        client, "mutation($t: [TaskInput!]!) { createTasks(tasks: $t) { id } }", {"t": [{"startTime": EARLY}]}
    )
    assert "range" in body["errors"][0]["message"]


def nested_json(levels: int) -> bytes:
    return b'{"tasks":[' + b'{"nexts":{"tasks":[' * (levels - 1) + b"{}" + b"]}}" * (levels - 1) + b"]}"


def nested_xml(levels: int) -> bytes:
    return b"<tasks>" + b"<task><nexts>" * (levels - 1) + b"<task/>" + b"</nexts></task>" * (levels - 1) + b"</tasks>"


@pytest.mark.parametrize("levels", [33, 34, 330])
async def test_nested_nexts_are_bounded_in_json_and_xml(client, raw_db, levels):
    """`levels` of tasks: `nexts` nested one fewer deep, at most TRACKING_MAX_NESTING (32 by default)."""
    for response in (
        await client.post("/tracking/task", content=nested_json(levels), headers=JSON),
        await client.post("/tracking/task", content=nested_xml(levels), headers=XML),
    ):
        if levels - 1 <= 32:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 400, response.text
            assert "TRACKING_MAX_NESTING" in response.text
    assert await raw_db.tasks.count_documents({}) == (2 * levels if levels - 1 <= 32 else 0)


async def test_deeply_nested_xml_is_refused_while_parsing(client):
    """200,000 nested elements took 90 s of xmltodict and blocked every other request."""
    body = b"<tasks>" + b"<a>" * 200_000 + b"</a>" * 200_000 + b"</tasks>"
    started = time.monotonic()
    response = await client.post("/tracking/task", content=body, headers=XML)
    assert time.monotonic() - started < 10, "refused while parsing, not after"
    assert response.status_code == 400
    assert "TRACKING_MAX_NESTING" in xmltodict.parse(response.content)["error"]["message"]


async def test_an_xml_body_with_more_elements_than_a_create_may_hold_is_refused(client, raw_db):
    body = b"<tasks>" + b"<task/>" * 700_000 + b"</tasks>"
    response = await client.post("/tracking/task", content=body, headers=XML)
    assert response.status_code == 400
    assert "TRACKING_MAX_TASKS_PER_CREATE" in response.text
    assert await raw_db.tasks.count_documents({}) == 0


async def test_a_million_tasks_in_one_create_are_refused_at_once(client, raw_db):
    body = b'{"tasks":[' + b",".join([b"{}"] * 1_000_000) + b"]}"
    started = time.monotonic()
    response = await client.post("/tracking/task", content=body, headers={"Content-Type": "application/json"})
    assert time.monotonic() - started < 10
    assert_error(response, 400, "more than 10000 tasks", "TRACKING_MAX_TASKS_PER_CREATE")
    assert await raw_db.tasks.count_documents({}) == 0


async def test_the_task_limit_counts_nested_tasks(small_store, tmp_path, raw_db):
    async with gateway(small_store, tmp_path, **SMALL_LIMITS) as client:
        five: dict[str, list[dict]] = {"tasks": [{}, {}, {"nexts": {"tasks": [{}, {}]}}]}
        assert (await client.post("/tracking/task", json=five)).status_code == 200
        six: dict[str, list[dict]] = {"tasks": [{}, {}, {"nexts": {"tasks": [{}, {"nexts": {"tasks": [{}]}}]}}]}
        assert_error(await client.post("/tracking/task", json=six), 400, "more than 5 tasks")
        body = await gql(client, "mutation { createTasks(tasks: [{}, {}, {}, {}, {}, {}]) { id } }")
        assert "TRACKING_MAX_TASKS_PER_CREATE" in body["errors"][0]["message"]
        # In variables, six tasks are a list longer than any argument takes: refused before parsing the query.
        mutation = {
            "query": "mutation($t: [TaskInput!]!) { createTasks(tasks: $t) { id } }",
            "variables": {"t": [{}] * 6},
        }
        response = await client.post("/graphql", json=mutation)
        assert response.status_code == 400
        assert "TRACKING_MAX_TASKS_PER_CREATE" in response.json()["errors"][0]["message"]
    assert await raw_db.tasks.count_documents({}) == 5


async def test_the_task_limit_bounds_a_mutation_s_creates_together_before_any_runs(small_store, tmp_path, raw_db):
    """Aliased createTasks each within the bound would else create the bound's worth once per alias (and the
    first would stand when a later one failed): the operation is refused whole, nothing created."""
    async with gateway(small_store, tmp_path, **SMALL_LIMITS) as client:
        three_and_three = (
            "mutation { a: createTasks(tasks: [{}, {}, {}]) { id } b: createTasks(tasks: [{}, {}, {}]) { id } }"
        )
        body = await gql(client, three_and_three)
        assert body.get("data") is None  # refused before execution: no data at all
        assert "the operation's createTasks together: more than 5 tasks" in body["errors"][0]["message"]
        assert "TRACKING_MAX_TASKS_PER_CREATE" in body["errors"][0]["message"]
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        nested = {
            "query": "mutation($t: [TaskInput!]!) "
            "{ a: createTasks(tasks: $t) { id } b: createTasks(tasks: $t) { id } }",
            "variables": {"t": [{}, {"nexts": [{}]}]},
        }
        assert "more than 5 tasks" in (await client.post("/graphql", json=nested)).json()["errors"][0]["message"]
        # GraphQL coerces one object where a list is expected into a list of one: `tasks: {…}`, `nexts: {…}`.
        chain = "{nexts: {nexts: {}}}"
        objects = f"mutation {{ a: createTasks(tasks: {chain}) {{ id }} b: createTasks(tasks: {chain}) {{ id }} }}"
        assert "more than 5 tasks" in (await gql(client, objects))["errors"][0]["message"]
        assert await raw_db.tasks.count_documents({}) == 0
        within = await gql(
            client, "mutation { a: createTasks(tasks: [{}, {}]) { id } b: createTasks(tasks: [{}, {}, {}]) { id } }"
        )
        assert "errors" not in within and len(within["data"]["a"]) + len(within["data"]["b"]) == 5
    assert await raw_db.tasks.count_documents({}) == 5


async def test_ids_per_request_are_bounded(small_store, tmp_path, raw_db):
    async with gateway(small_store, tmp_path, **SMALL_LIMITS) as client:
        await client.post("/tracking/task", json={"tasks": [{"id": i} for i in range(1, 6)]})
        response = await client.put("/tracking/task/1/next", params={"nextTaskId": ["2", "3", "4", "5"]})
        assert_error(response, 400, "nextTaskId", "limit of 3", "TRACKING_MAX_IDS_PER_REQUEST")
        body = await gql(client, '{ tasks(ids: ["1", "2", "3", "4"]) { id } }')
        assert "TRACKING_MAX_IDS_PER_REQUEST" in body["errors"][0]["message"]
        body = await gql(client, 'mutation { addNexts(id: "1", nextIds: ["2", "3", "4", "5"]) { id } }')
        assert "TRACKING_MAX_IDS_PER_REQUEST" in body["errors"][0]["message"]
    assert await raw_db.tasks.count_documents({"nexts": {"$ne": []}}) == 0


async def test_a_million_ids_in_graphql_variables_are_refused_before_any_work(client):
    started = time.monotonic()
    response = await client.post(
        "/graphql",
        json={"query": "query($ids: [ID!]!) { tasks(ids: $ids) { id } }", "variables": {"ids": ["1"] * 10**6}},
    )
    assert time.monotonic() - started < 10
    assert response.status_code == 400
    assert "TRACKING_MAX_IDS_PER_REQUEST" in response.text


async def test_a_task_larger_than_a_mongodb_document_is_a_400(store, tmp_path, raw_db):
    async with gateway(store, tmp_path, max_body_bytes=40 * 1024 * 1024) as client:
        response = await client.post("/tracking/task", json={"tasks": [{"description": "x" * (17 * 1024 * 1024)}]})
    assert_error(response, 400, "16 MiB")
    assert await raw_db.tasks.count_documents({}) == 0


@pytest.mark.parametrize(
    "variables",
    [
        b'{"query": "query($v: [ID!]!) { tasks(ids: $v) { id } }", "variables": {"v": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
        b'{"query": "query($v: ID!) { task(id: $v) { id } }", "variables": {"v": ' + b"9" * 5000 + b"}}",
        b'{"query": "{ task(id: \\"1\\") { id } }", "variables": {"v": "\xff\xfe"}}',
    ],
    ids=["nested 100k deep", "5000-digit integer", "invalid UTF-8"],
)
async def test_graphql_bodies_that_cannot_be_decoded_are_400s(client, variables):
    response = await client.post("/graphql", content=variables, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "Unable to parse request body as JSON" in response.text


async def test_graphql_variables_nested_past_the_bound_name_it(client):
    value: list = []
    for _ in range(200):
        value = [value]
    response = await client.post("/graphql", json={"query": '{ task(id: "1") { id } }', "variables": {"v": value}})
    assert response.status_code == 400
    assert "TRACKING_MAX_NESTING" in response.text


# ---- strings XML cannot carry -------------------------------------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x08", "\x0b", "\x1f", "\ufffe"])
async def test_strings_xml_cannot_carry_are_refused_naming_the_field(client, raw_db, character):
    response = await client.post("/tracking/task", json={"tasks": [{"name": f"a{character}b"}]})
    assert_error(response, 400, "tasks[0].name", "XML 1.0")
    await client.post("/tracking/task", json={"tasks": [{"id": 1}]})
    assert_error(await client.put("/tracking/task/1", json={"status": character}), 400, "status")
    body = await gql(
        client, 'mutation($s: String) { updateTask(id: "1", patch: {status: $s}) { id } }', {"s": character}
    )
    assert "XML 1.0" in body["errors"][0]["message"]
    assert await raw_db.tasks.count_documents({}) == 1


async def test_xml_answers_parse_whatever_other_tools_stored(client, raw_db):
    await raw_db.tasks.insert_one(
        {"_id": Int64(1), "name": "bell\x07 and nul\x00", "job-id": "j", "nexts": [], "previous": []}
    )
    for path in ("/tracking/task/1", "/tracking/j/task/roots"):
        response = await client.get(path, headers={"Accept": "application/xml"})
        assert response.status_code == 200
        assert "bell\ufffd and nul\ufffd" in response.content.decode()
        xmltodict.parse(response.content)  # well-formed
    assert (await client.get("/tracking/task/1")).json()["name"] == "bell\x07 and nul\x00"  # JSON carries it as is


# ---- the HTTP layer ----------------------------------------------------------------------------------------------


async def test_405_names_every_method_the_path_serves(client):
    response = await client.patch("/tracking/task/1")
    assert_error(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    response = await client.post("/tracking/task/1/next")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}


async def raw_request(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
    except ConnectionError:
        pass  # refused while sending: the answer is still there to read
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    return answer


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_oversized_heads_are_refused_without_reading_them_and_the_server_stays_responsive(live):
    port = live
    huge_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 * 1024 * 1024) + b"\r\n\r\n"
    status, body = status_and_body(await raw_request(port, huge_header))
    assert (status, body["code"]) == (431, 431)
    assert "TRACKING_MAX_HEADER_BYTES" in body["message"]

    long_line = b"GET /healthz?" + b"a" * (300 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, body = status_and_body(await raw_request(port, long_line))
    assert status == 414 and "request line" in body["message"]

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more: a slow client
    status, body = status_and_body(await asyncio.wait_for(reader.read(4096), 10))
    assert status == 408 and "TRACKING_HEADER_TIMEOUT_MS" in body["message"]
    writer.close()

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/healthz", headers={"X-Fine": "a" * 30_000})).status_code == 200
