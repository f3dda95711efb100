"""Operating the gateway: read-only tokens, CORS, /metrics, logs, the embedded MongoDB for ops tooling, and the
XML and Accept headers legacy Java callers send."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import xmltodict
from bson.int64 import Int64
from pymongo import AsyncMongoClient
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import free_port
from gateway.settings import load_settings
from tests.helpers import LoggedProcess, eventually, gateway_ready, lifespan_client, served, subscribed

WRITER, READER = "writer-token", "reader-token"
GATEWAY = [sys.executable, "-m", "gateway"]


@pytest.fixture
async def client(store, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        api_tokens=WRITER, read_tokens=READER, data_dir=tmp_path, cors_origins="https://dash.example"
    )
    async with lifespan_client(create_app(settings, Backend(store=store))) as http:
        yield http


def as_(token: str) -> dict[str, str]:
    return {"X-Auth-Token": token}


# ---- read-only tokens -----------------------------------------------------------------------------------------------


async def test_a_read_token_reads_but_every_write_is_403(client, raw_db):
    await client.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "j"}, {"id": 2}]}, headers=as_(WRITER))
    for path in ("/tracking/task/1", "/tracking/task/1/next", "/tracking/j/task/roots"):
        assert (await client.get(path, headers=as_(READER))).status_code == 200
    writes = [
        client.post("/tracking/task", json={"tasks": [{}]}, headers=as_(READER)),
        client.put("/tracking/task/1", json={"status": "X"}, headers=as_(READER)),
        client.put("/tracking/task/1/next", params={"nextTaskId": "2"}, headers=as_(READER)),
        client.delete("/tracking/task/1/next", params={"nextTaskId": "2"}, headers=as_(READER)),
        client.delete("/tracking/task/1", headers=as_(READER)),
    ]
    for response in await asyncio.gather(*writes):
        assert response.status_code == 403
        assert response.json() == {
            "code": 403,
            "message": "this X-Auth-Token may only read (TRACKING_READ_TOKENS): changes need a TRACKING_API_TOKENS one",
        }
    assert await raw_db.tasks.count_documents({}) == 2
    assert (await raw_db.tasks.find_one({"_id": 1})).get("status") is None


async def test_a_read_token_runs_queries_not_mutations(client, raw_db):
    await client.post("/tracking/task", json={"tasks": [{"id": 1}]}, headers=as_(WRITER))
    query = await client.post("/graphql", json={"query": '{ task(id: "1") { id } }'}, headers=as_(READER))
    assert query.json()["data"] == {"task": {"id": "1"}}
    mutation = 'mutation { updateTask(id: "1", patch: {status: "X"}) { id } }'
    refused = (await client.post("/graphql", json={"query": mutation}, headers=as_(READER))).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "TRACKING_READ_TOKENS" in refused["errors"][0]["message"]
    assert (await raw_db.tasks.find_one({"_id": 1})).get("status") is None
    allowed = (await client.post("/graphql", json={"query": mutation}, headers=as_(WRITER))).json()
    assert allowed["data"] == {"updateTask": {"id": "1"}}


async def test_a_read_token_subscribes(store, tmp_path, raw_db):
    settings = load_settings(api_tokens=WRITER, read_tokens=READER, data_dir=tmp_path)
    app = create_app(settings, Backend(store=store))
    ws_url = "graphql-transport-ws"
    async with (
        served(app, settings) as port,
        connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol(ws_url)]) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init", "payload": as_(READER)}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": "subscription { taskEvents { kind taskId } }"}
        async with subscribed():
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        await raw_db.tasks.insert_one({"_id": Int64(2**40), "nexts": [], "previous": []})
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["payload"]["data"]["taskEvents"] == {"kind": "CREATED", "taskId": str(2**40)}


# ---- CORS ------------------------------------------------------------------------------------------------------------


async def test_a_dashboard_on_an_allowed_origin_gets_its_preflight_and_answers(client):
    preflight = await client.options(
        "/tracking/task",
        headers={
            "Origin": "https://dash.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-Auth-Token, Content-Type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://dash.example"
    assert "x-auth-token" in preflight.headers["access-control-allow-headers"].lower()
    answer = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={**as_(READER), "Origin": "https://dash.example"}
    )
    assert answer.headers["access-control-allow-origin"] == "https://dash.example"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    other = await client.get("/tracking/task/1", headers={**as_(READER), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_no_cross_origin_access_by_default(store, tmp_path):
    app = create_app(load_settings(api_tokens=WRITER, data_dir=tmp_path), Backend(store=store))
    async with lifespan_client(app) as http:
        headers = {"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"}
        preflight = await http.options("/tracking/task/1", headers=headers)
        assert "access-control-allow-origin" not in preflight.headers


# ---- metrics --------------------------------------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_template_and_graphql_operations(client):
    await client.post("/tracking/task", json={"tasks": [{"id": 5}]}, headers=as_(WRITER))
    for task_id in (5, 6):
        await client.get(f"/tracking/task/{task_id}", headers=as_(READER))
    await client.post("/graphql", json={"query": "query Dashboard { __typename }"}, headers=as_(READER))
    await client.post("/graphql", json={"query": "query Broken { nope }"}, headers=as_(READER))
    text = (await client.get("/metrics")).text
    assert 'tracking_http_requests_total{method="GET",route="/tracking/task/{taskId}",status="200"}' in text
    assert 'tracking_http_requests_total{method="GET",route="/tracking/task/{taskId}",status="404"}' in text
    assert "/tracking/task/5" not in text, "paths are never labels"
    assert 'tracking_graphql_operations_total{operation="Dashboard",outcome="ok"}' in text
    assert 'tracking_graphql_operations_total{operation="Broken",outcome="error"}' in text
    for name in (
        "tracking_http_request_duration_seconds_bucket",
        "tracking_graphql_open_subscriptions",
        "tracking_mongodb_failures_total",
        "tracking_link_queue_wait_seconds",
    ):
        assert name in text


# ---- the XML and Accept headers of legacy callers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'<ns2:tasks xmlns:ns2="urn:nfvd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ns2:task>'
        b'<ns2:name>a</ns2:name><ns2:description xsi:nil="true"/><ns2:number-of-retries>3</ns2:number-of-retries>'
        b"</ns2:task></ns2:tasks>",
        b'<?xml version="1.0"?><tasks xmlns="urn:nfvd"><task><name>a</name><number-of-retries>3</number-of-retries>'
        b"</task></tasks>",
    ],
    ids=["prefixed namespace and xsi:nil", "default namespace"],
)
async def test_namespaced_xml_is_read_by_local_name(client, body):
    response = await client.post("/tracking/task", content=body, headers={**as_(WRITER), "Content-Type": "text/xml"})
    assert response.status_code == 200, response.text
    (created,) = response.json()["tasks"]
    assert created["name"] == "a" and created["number-of-retries"] == 3 and "description" not in created


async def test_xsi_nil_clears_a_field_on_update(client):
    await client.post(
        "/tracking/task", json={"tasks": [{"id": 1, "name": "kept", "description": "gone"}]}, headers=as_(WRITER)
    )
    body = b'<task xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><description xsi:nil="true"/></task>'
    response = await client.put(
        "/tracking/task/1", content=body, headers={**as_(WRITER), "Content-Type": "application/xml"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {**response.json(), "name": "kept"} and "description" not in response.json()


async def test_the_charset_of_the_content_type_is_honoured(client):
    body = "<tasks><task><name>caf\u00e9</name></task></tasks>".encode("iso-8859-1")
    headers = {**as_(WRITER), "Content-Type": "application/xml; charset=ISO-8859-1"}
    response = await client.post("/tracking/task", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["tasks"][0]["name"] == "caf\u00e9"
    unknown = await client.post(
        "/tracking/task", content=body, headers={**headers, "Content-Type": "application/xml; charset=klingon"}
    )
    assert unknown.status_code == 400 and "charset" in unknown.json()["message"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("*/*, application/json;q=0", "application/xml"),
        ("text/*", "text/xml"),
        ("application/xml;q=0.5, application/json;q=0.9", "application/json"),
        ("application/json;q=0.5, application/xml", "application/xml"),
        ("application/*", "application/json"),
        ("text/xml", "text/xml"),
        ("*/*", "application/json"),
    ],
)
async def test_accept_follows_rfc_9110(client, accept, expected):
    await client.post("/tracking/task", json={"tasks": [{"id": 1}]}, headers=as_(WRITER))
    response = await client.get("/tracking/task/1", headers={**as_(READER), "Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(expected)
    if expected.endswith("/xml"):
        assert xmltodict.parse(response.content)["task"]["id"] == "1"


@pytest.mark.parametrize("accept", ["application/json;q=0, application/xml;q=0", "text/html", "*/*;q=0"])
async def test_nothing_acceptable_is_406(client, accept):
    response = await client.get("/tracking/task/1", headers={**as_(READER), "Accept": accept})
    assert response.status_code == 406


# ---- a whole process: logs, the embedded MongoDB's port and URI -------------------------------------------------


@pytest.mark.slow
async def test_json_logs_carry_request_ids_never_tokens_and_ops_tools_find_the_embedded_mongodb(tmp_path):
    port, mongo_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKING_")},
        "TRACKING_API_TOKENS": WRITER,
        "TRACKING_DATA_DIR": str(tmp_path / "var"),
        "TRACKING_PORT": str(port),
        "TRACKING_LOG_FORMAT": "json",
        "TRACKING_EMBEDDED_MONGODB_PORT": str(mongo_port),
    }
    process = LoggedProcess(GATEWAY, env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await eventually(partial(gateway_ready, port, process), timeout=90, what="the gateway")
            headers = {**as_(WRITER), "X-Request-ID": "trace-me-42"}
            await http.post("/tracking/task", json={"tasks": [{"id": 9, "name": "seen by mongosh"}]}, headers=headers)
            await http.post("/graphql", json={"query": "{ nope }"}, headers={**as_(WRITER), "X-Request-ID": "gql-7"})
        uri = subprocess.run(  # noqa: ASYNC221 - a CLI call that answers at once
            [*GATEWAY, "mongodb-uri"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert uri == f"mongodb://127.0.0.1:{mongo_port}/?replicaSet=rs0"
        tool: AsyncMongoClient = AsyncMongoClient(uri)
        try:
            stored = await tool.tracking.tasks.find_one({"_id": 9})
            assert stored is not None and stored["name"] == "seen by mongosh"
        finally:
            await tool.close()
    finally:
        process.terminate()
        stderr = process.output()
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([line for line in stderr.splitlines() if line.strip()]), stderr
    assert {"asctime", "levelname", "name", "message", "request_id"} <= set(lines[0])
    access = [line for line in lines if line["name"] == "uvicorn.access" and "/tracking/task" in line["message"]]
    assert access and access[0]["request_id"] == "trace-me-42"
    assert WRITER not in stderr


# ---- the OpenAPI document for generators ----------------------------------------------------------------------------


GENERATOR_CONFIG = """\
# The generator's own post-hooks, but for ruff's PYI036, whose fix (`*args: object` in __exit__) makes the
# generated client.py fail mypy --strict against httpx's typed __exit__ (docs/how-to/python-client.md says so too).
post_hooks:
  - "ruff check . --fix-only --extend-select=I --extend-ignore=PYI036"
  - "ruff format ."
"""

TYPED_CALLER = """\
\"\"\"A caller of the generated client, type-checked with it: the shapes a typed program works with.\"\"\"

from tracking_client import AuthenticatedClient
from tracking_client.api.task import create_tasks, get_task
from tracking_client.models import Error, Task, TaskList
from tracking_client.types import Unset


async def created_names(client: AuthenticatedClient) -> list[str]:
    answer = await create_tasks.asyncio(client=client, body=TaskList(tasks=[Task(name="a", job_id="typed")]))
    if not isinstance(answer, TaskList) or isinstance(answer.tasks, Unset):
        return []
    return [task.name for task in answer.tasks if isinstance(task.name, str)]


async def message_of_missing(client: AuthenticatedClient, task_id: int) -> str | None:
    answer = await get_task.asyncio(task_id, client=client)
    return answer.message if isinstance(answer, Error) else None
"""


async def _mypy_strict(directory: Path, *targets: str) -> str:
    """mypy --strict's report on `targets` in `directory`, with no configuration but the flag."""
    command = [sys.executable, "-m", "mypy", "--strict", "--config-file=", "--cache-dir", ".mypy_cache", *targets]
    checked = await asyncio.create_subprocess_exec(*command, cwd=directory, stdout=asyncio.subprocess.PIPE)
    report, _ = await checked.communicate()
    assert checked.returncode is not None
    return report.decode() if checked.returncode else ""


@pytest.mark.slow
async def test_a_client_generated_from_the_openapi_document_creates_links_and_reads(store, tmp_path, monkeypatch):
    settings = load_settings(api_tokens=WRITER, data_dir=tmp_path)
    app = create_app(settings, Backend(store=store))
    (tmp_path / "openapi.json").write_text(json.dumps(app.openapi()))
    (tmp_path / "generator.yaml").write_text(GENERATOR_CONFIG)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = ["generate", "--path", "openapi.json", "--output-path", "tracking_client", "--meta", "none"]
    generator = Path(sys.executable).parent / "openapi-python-client"
    generated = await asyncio.create_subprocess_exec(
        str(generator), *command, "--config", "generator.yaml", cwd=tmp_path, env=env
    )
    assert await generated.wait() == 0
    (tmp_path / "typed_caller.py").write_text(TYPED_CALLER)
    assert await _mypy_strict(tmp_path, "tracking_client", "typed_caller.py") == ""
    monkeypatch.syspath_prepend(str(tmp_path))
    client_package = importlib.import_module("tracking_client")
    api = importlib.import_module("tracking_client.api.task")
    models = importlib.import_module("tracking_client.models")
    async with served(app, settings) as port:
        client = client_package.AuthenticatedClient(
            base_url=f"http://127.0.0.1:{port}", token=WRITER, prefix="", auth_header_name="X-Auth-Token"
        )
        body = models.TaskList.from_dict({"tasks": [{"job-id": "generated", "name": "a"}, {"name": "b"}]})
        created = await importlib.import_module(f"{api.__name__}.create_tasks").asyncio(client=client, body=body)
        first, second = (task.id for task in created.tasks)
        add_next = importlib.import_module(f"{api.__name__}.add_next_tasks")
        linked = await add_next.asyncio(first, client=client, next_task_id=[second])
        assert [task.id for task in linked.tasks] == [second]
        get_task = importlib.import_module(f"{api.__name__}.get_task")
        read = await get_task.asyncio(second, client=client)
        assert read.name == "b" and read.id == second
        missing = await get_task.asyncio_detailed(10**15, client=client)
        assert missing.status_code == 404 and missing.parsed.message == f"task {10**15} not found"
