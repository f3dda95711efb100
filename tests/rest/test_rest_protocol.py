"""The legacy Tracking API's protocol through HTTP on the real MongoDB: tokens, content negotiation, body limits,
request ids, unexpected failures and MongoDB outages, unknown paths, the OpenAPI document, the order of checks."""

from __future__ import annotations

import logging

import pytest
import xmltodict
from openapi_spec_validator import validate

from tests.helpers import AUTH, TOKEN, gateway_app, lifespan_client
from tests.rest.api import assert_error, create, ids

# ---- auth, negotiation, limits, request ids --------------------------------------------------------------------

OPERATIONS = [
    ("POST", "/tracking/task"),
    ("GET", "/tracking/task/1"),
    ("GET", "/tracking/task/1/next"),
    ("GET", "/tracking/task/1/previous"),
    ("GET", "/tracking/job/task/roots"),
    ("PUT", "/tracking/task/1"),
    ("PUT", "/tracking/task/1/next?nextTaskId=2"),
    ("PUT", "/tracking/task/1/previous?prevTaskId=2"),
    ("DELETE", "/tracking/task/1"),
    ("DELETE", "/tracking/task/1/next?nextTaskId=2"),
    ("DELETE", "/tracking/task/1/previous?prevTaskId=2"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("token", [None, "wrong", ""])
async def test_every_operation_needs_a_known_token(client, raw_db, method, path, token):
    await create(client, {"id": 1}, {"id": 2})
    headers = {"X-Auth-Token": token} if token is not None else {}
    client.headers.pop("X-Auth-Token")
    response = await client.request(method, path, headers=headers, json={"tasks": []} if method == "POST" else None)
    assert_error(response, 403, "X-Auth-Token")
    assert await raw_db.tasks.count_documents({}) == 2


async def test_forbidden_in_xml_when_asked(client):
    client.headers.pop("X-Auth-Token")
    response = await client.get("/tracking/task/1", headers={"Accept": "application/xml"})
    assert response.status_code == 403
    assert xmltodict.parse(response.content)["error"]["code"] == "403"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("application/xml", "application/xml"),
        ("text/xml", "text/xml; charset=utf-8"),
        ("application/xml;q=0.5, application/json", "application/json"),
        ("text/html, application/xml;q=0.1", "application/xml"),
    ],
)
async def test_accept_negotiation(client, accept, expected):
    await create(client, {})
    headers = {"Accept": accept} if accept else {}
    response = await client.get("/tracking/task/1", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == expected


@pytest.mark.parametrize("accept", ["text/html", "application/json;q=0", "image/png"])
async def test_unacceptable_accept_is_406(client, raw_db, accept):
    response = await client.post("/tracking/task", json={"tasks": [{}]}, headers={"Accept": accept})
    assert_error(response, 406)
    assert await raw_db.tasks.count_documents({}) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_unsupported_content_type_is_415(client, raw_db, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/tracking/task", content=b'{"tasks": [{}]}', headers=headers)
    assert_error(response, 415)
    assert await raw_db.tasks.count_documents({}) == 0


async def test_text_xml_and_charset_parameters_are_accepted(client):
    response = await client.post(
        "/tracking/task", content=b"<tasks><task/></tasks>", headers={"Content-Type": "text/xml; charset=utf-8"}
    )
    assert ids(response) == [1]
    response = await client.post(
        "/tracking/task", content=b'{"tasks":[{}]}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ids(response) == [2]


@pytest.fixture
async def small_limit_client(store, tmp_path):
    app, _ = gateway_app(store, tmp_path, max_body_bytes=100)
    async with lifespan_client(app, AUTH) as http:
        yield http


async def test_declared_oversized_body_is_413(small_limit_client, raw_db):
    response = await small_limit_client.post("/tracking/task", json={"tasks": [{"name": "x" * 200}]})
    assert_error(response, 413, "TRACKING_MAX_BODY_BYTES")
    assert response.headers["x-request-id"]
    assert await raw_db.tasks.count_documents({}) == 0


async def test_streamed_oversized_body_is_cut_off_with_413(small_limit_client, raw_db):
    chunks_sent = 0

    async def body():
        nonlocal chunks_sent
        yield b'{"tasks": [{"name": "'
        for _ in range(1000):
            chunks_sent += 1
            yield b"x" * 50
        yield b'"}]}'

    response = await small_limit_client.post(
        "/tracking/task", content=body(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413)
    assert chunks_sent < 1000, "the body should be cut off, not read whole"
    assert await raw_db.tasks.count_documents({}) == 0


async def test_a_body_within_the_limit_passes(small_limit_client):
    assert ids(await small_limit_client.post("/tracking/task", json={"tasks": [{}]})) == [1]


async def test_request_ids_are_echoed_or_generated(client):
    assert (await client.get("/tracking/task/1", headers={"X-Request-ID": "abc-123"})).headers["x-request-id"] == (
        "abc-123"
    )
    generated = (await client.get("/tracking/task/1", headers={"X-Request-ID": "bad id\twith spaces"})).headers
    assert generated["x-request-id"] != "bad id\twith spaces" and len(generated["x-request-id"]) == 32
    assert (await client.get("/healthz")).headers["x-request-id"]


async def test_an_unexpected_failure_is_a_logged_500_without_a_trace(client, store, monkeypatch, caplog):
    async def broken(task_id):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(store, "get_task", broken)
    with caplog.at_level(logging.ERROR, logger="gateway.requests"):
        response = await client.get("/tracking/task/1", headers={"X-Request-ID": "req-500"})
    assert_error(response, 500, "req-500")
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"] == "req-500"
    assert any("req-500" in record.getMessage() and record.exc_info for record in caplog.records)


async def test_mongodb_unavailable_is_503(client, store, monkeypatch):
    from models import StorageUnavailable

    async def unavailable(task_id):
        raise StorageUnavailable("MongoDB unavailable: no servers")

    monkeypatch.setattr(store, "get_task", unavailable)
    assert_error(await client.get("/tracking/task/1"), 503, "MongoDB unavailable")


async def test_unknown_paths_get_an_error_body(client):
    assert_error(await client.get("/tracking/nothing/here"), 404)
    assert_error(await client.patch("/tracking/task/1"), 405)


async def test_openapi_documents_the_legacy_operations(client):
    schema = (await client.get("/openapi.json")).json()
    summaries = {
        (method.upper(), path): operation["summary"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert summaries[("POST", "/tracking/task")] == "Create Task that not exist"
    assert summaries[("GET", "/tracking/task/{taskId}/next")] == "Get nexts Tasks from taskId"
    assert summaries[("GET", "/tracking/{jobId}/task/roots")] == "Return the tasks of the job (including roots or not)"
    assert summaries[("DELETE", "/tracking/task/{taskId}/previous")] == "Delete previous tasks in taskId"
    assert len([key for key in summaries if key[1].startswith("/tracking")]) == 11
    put_next = schema["paths"]["/tracking/task/{taskId}/next"]["put"]
    parameters = {p["name"]: p for p in put_next["parameters"]}
    assert set(parameters) == {"taskId", "nextTaskId"}
    int64 = {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}
    assert parameters["taskId"]["schema"] == {**int64, "description": "Task id"}
    assert parameters["nextTaskId"]["required"] is True
    assert parameters["nextTaskId"]["schema"] == {"type": "array", "items": int64, "minItems": 1}
    assert "422" not in put_next["responses"]
    components = schema["components"]["schemas"]
    assert {"Task", "TaskList", "TaskUpdate", "Error"} <= set(components)
    assert "number-of-retries" in components["Task"]["properties"]
    assert "nexts" in components["Task"]["properties"] and "nexts" not in components["TaskUpdate"]["properties"]
    assert components["TaskList"]["xml"] == {"name": "tasks"} and components["Error"]["xml"] == {"name": "error"}
    update = schema["paths"]["/tracking/task/{taskId}"]["put"]["requestBody"]["content"]
    assert update["application/xml"]["schema"]["$ref"] == "#/components/schemas/TaskUpdate"
    operation_ids = {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}
    assert operation_ids == {
        "createTasks", "getTask", "getNextTasks", "getPreviousTasks", "getJobTasks", "updateTask",
        "addNextTasks", "addPreviousTasks", "deleteTask", "deleteNextTasks", "deletePreviousTasks",
    }  # fmt: skip
    assert all(op["security"] == [{"apiKey": []}] for ops in schema["paths"].values() for op in ops.values())
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        **schema["components"]["securitySchemes"]["apiKey"],
        "type": "apiKey",
        "in": "header",
        "name": "X-Auth-Token",
    }
    assert all(path.startswith("/tracking/") for path in schema["paths"]), "GraphQL has its own schema"
    validate(schema)  # openapi-spec-validator: a valid OpenAPI 3.1 document


async def test_checks_run_in_the_documented_order(small_limit_client):
    oversized = {"tasks": [{"name": "x" * 200}]}
    small_limit_client.headers.pop("X-Auth-Token")
    assert_error(await small_limit_client.post("/tracking/task", json=oversized, headers={"Accept": "text/html"}), 403)
    small_limit_client.headers["X-Auth-Token"] = TOKEN
    assert_error(await small_limit_client.post("/tracking/task", json=oversized, headers={"Accept": "text/html"}), 406)
    assert_error(await small_limit_client.post("/tracking/task", json=oversized), 413)
    response = await small_limit_client.get("/tracking/task/abc", headers={"Accept": "image/png"})
    assert_error(response, 406)


async def test_a_parameter_taking_one_value_given_twice_is_refused_naming_it(client, raw_db):
    """FastAPI kept the last `root` or `type` and dropped the others (a proxy in front may have read the first);
    list parameters repeat as the legacy API documents."""
    created = await client.post("/tracking/task", json={"tasks": [{"job-id": "j", "nexts": {"tasks": [{}]}}]})
    assert created.status_code == 200, created.text
    first = created.json()["tasks"][0]["id"]
    for path in ("/tracking/j/task/roots?root=true&root=false", f"/tracking/task/{first}/next?type=x&type=y"):
        for accept in ("application/json", "application/xml"):
            refused = await client.get(path, headers={"Accept": accept})
            assert refused.status_code == 400, (path, refused.text)
            assert "given 2 times" in refused.text and accept in refused.headers["content-type"], refused.text
    listed = await client.get("/tracking/j/task/roots?root=true")
    assert listed.status_code == 200 and len(listed.json()["tasks"]) == 2
    statuses = await client.get(f"/tracking/task/{first}/next?status=READY&status=a")  # a list parameter repeats
    assert statuses.status_code == 200, statuses.text


async def test_a_json_body_behind_a_utf8_byte_order_mark_is_read(client, raw_db):
    """RFC 8259 section 8.1 lets a parser ignore a BOM, as the legacy API's Java stack does and as the XML reader
    here does; some .NET and Windows tools write one. It was refused as malformed JSON."""
    body = b'\xef\xbb\xbf{"tasks":[{"name":"behind a BOM"}]}'
    response = await client.post("/tracking/task", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert await raw_db.tasks.count_documents({"name": "behind a BOM"}) == 1
    only_a_bom = await client.post(
        "/tracking/task", content=b"\xef\xbb\xbf", headers={"Content-Type": "application/json"}
    )
    assert only_a_bom.status_code == 400 and "empty" in only_a_bom.text


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"tasks":[{"name":"shown","name":"stored"}]}', "'name'"),
        (b'{"tasks":[{"name":"a"}],"tasks":[{"name":"b"}]}', "'tasks'"),
        (b'{"tasks":[{"nexts":{"tasks":[{"status":"A","status":null}]}}]}', "'status'"),
    ],
)
async def test_a_json_object_naming_a_member_twice_is_refused_naming_it(client, raw_db, body, named):
    """orjson kept the last value and dropped the others without a word; a proxy or firewall in front may read
    the first (XML refuses a field given twice already)."""
    response = await client.post("/tracking/task", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and f"{named} appears more than once" in response.text, response.text
    assert await raw_db.tasks.count_documents({}) == 0


async def test_a_body_of_more_members_than_any_request_holds_is_refused_before_it_is_read_again(client, raw_db):
    """A body within the size limit held a million members (one object) or a million tasks' worth of unknown
    fields: the members check and validation walked each, seconds of the event loop. The document bounds come
    first now, and unknown fields are named without validating each."""
    members = ",".join(f'"k{i}":0' for i in range(10_001))
    wide = await client.post(
        "/tracking/task", content=f'{{"tasks":[{{}}],{members}}}', headers={"Content-Type": "application/json"}
    )
    assert wide.status_code == 400 and "an object of 10002 members" in wide.text, wide.text
    assert "TRACKING_MAX_TASKS_PER_CREATE" in wide.text
    unknown = {"tasks": [{f"x{i}": 0 for i in range(50)}, {"nexts": {"tasks": [{"colour": 1}], "more": 2}}]}
    refused = await client.post("/tracking/task", json=unknown)
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == (
        "tasks[0].x0: unknown field; tasks[0].x1: unknown field; tasks[0].x2: unknown field; "
        "tasks[0].x3: unknown field; tasks[0].x4: unknown field; and 47 more"
    )
    nested = await client.post("/tracking/task", json={"tasks": [{"nexts": {"tasks": [{"colour": 1}], "more": 2}}]})
    assert (
        nested.json()["message"] == "tasks[0].nexts.more: unknown field; tasks[0].nexts.tasks[0].colour: unknown field"
    )
    assert await raw_db.tasks.count_documents({}) == 0
