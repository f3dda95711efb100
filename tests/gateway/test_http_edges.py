"""HTTP as clients nobody here wrote speak it (RFC 9110): HEAD, a '/' in a job id, trailing slashes,
`Accept: text/xml`, and tokens kept out of the logs. On the gateway's own uvicorn configuration, with raw sockets
where a client library would hide what is sent (the wire itself, bodies and heads, is in test_http_wire.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import xmltodict

from gateway.embedded import free_port
from tests.gateway.wire import (
    connect,
    create,
    raw_exchange,
    read_answer,
    request_head,
)
from tests.helpers import TOKEN, eventually

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)


# ---- HEAD wherever GET is (RFC 9110 §9.3.2) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/tracking/task/1",
        "/tracking/task/1/next",
        "/tracking/task/1/previous",
        "/tracking/j/task/roots",
        "/tracking/task/999",  # a 404, with its Error body's length
        "/tracking/task/x",  # a 400
        "/healthz",
        "/readyz",
        "/graphql?query=%7B__typename%7D",
        "/ui/",
        "/ui/app.js",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/static/favicon.svg",
    ],
)
async def test_head_answers_what_get_answers_without_the_body(http, live, path):
    await create(http, {"id": 1, "job-id": "j", "nexts": {"tasks": [{"id": 2}]}})
    get = await http.get(path)
    reader, writer = await connect(live)
    try:
        # HEAD, then GET on the same connection: the GET's answer parses only if HEAD's sent no body bytes.
        writer.write(request_head("HEAD", path) + request_head("GET", path))
        head = await read_answer(reader, head_only=True)
        after = await read_answer(reader)
    finally:
        writer.close()
    assert head.status == get.status_code
    for name in ("content-type", "content-length"):
        assert head.headers.get(name) == get.headers.get(name), name
    assert int(head.headers["content-length"]) == len(get.content) > 0
    assert (after.status, without_nonce(after.body)) == (get.status_code, without_nonce(get.content))


def without_nonce(page: bytes) -> bytes:
    """A page as every answer has it: ReDoc's (and GraphiQL's) nonce is new in each (gateway/page_security.py)."""
    return re.sub(rb'nonce="[A-Za-z0-9_-]+"', b'nonce=""', page)


async def test_head_of_the_graphiql_page_is_served_without_a_token(live):
    answer = await raw_exchange(live, b"HEAD /graphql HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/html")


async def test_head_needs_the_token_a_get_needs(live):
    answer = await raw_exchange(live, b"HEAD /tracking/task/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 403
    assert int(answer.headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/tracking/task/1", {"GET", "HEAD", "PUT", "DELETE"}),
        ("POST", "/tracking/task/1/next", {"GET", "HEAD", "PUT", "DELETE"}),
        ("DELETE", "/tracking/j/task/roots", {"GET", "HEAD"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("HEAD", "/tracking/task", {"POST"}),  # no GET there, so no HEAD either
        ("GET", "/tracking/task", {"POST"}),
    ],
)
async def test_405_lists_head_wherever_get_is_served(http, method, path, allowed):
    response = await http.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == allowed
    if method != "HEAD":
        assert response.json()["code"] == 405


# ---- a '/' in a job id -----------------------------------------------------------------------------------------------


async def test_a_job_id_holding_a_slash_is_read_back_through_its_encoded_form(http):
    await create(http, {"id": 1, "job-id": "vnf/42"}, {"id": 2, "job-id": "vnf"})
    xml = (
        b"<tasks><task><id>3</id><job-id>vnf/42</job-id></task><task><id>4</id><job-id>50%/x y</job-id></task></tasks>"
    )
    created = await http.post("/tracking/task", content=xml, headers={"Content-Type": "application/xml"})
    assert created.status_code == 200, created.text

    listed = await http.get("/tracking/vnf%2F42/task/roots")
    assert listed.status_code == 200, listed.text
    assert [(t["id"], t["job-id"]) for t in listed.json()["tasks"]] == [(1, "vnf/42"), (3, "vnf/42")]
    as_xml = await http.get("/tracking/vnf%2f42/task/roots", headers={"Accept": "application/xml"})
    assert [t["id"] for t in xmltodict.parse(as_xml.content)["tasks"]["task"]] == ["1", "3"]
    odd = await http.get("/tracking/50%25%2Fx%20y/task/roots")
    assert [t["id"] for t in odd.json()["tasks"]] == [4]
    assert [t["id"] for t in (await http.get("/tracking/vnf/task/roots")).json()["tasks"]] == [2]


async def test_an_unencoded_slash_still_separates_path_segments(http):
    await create(http, {"id": 1, "job-id": "vnf/42"})
    response = await http.get("/tracking/vnf/42/task/roots")
    assert response.status_code == 404
    assert response.json()["code"] == 404


async def test_an_encoded_slash_in_a_task_id_is_no_task_id(http):
    await create(http, {"id": 1})
    response = await http.get("/tracking/task/1%2F2")
    assert response.status_code == 400
    assert "taskId" in response.json()["message"]


# ---- no redirect to another path (trailing slashes) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tracking/task/1/"),
        ("PUT", "/tracking/task/1/"),
        ("POST", "/tracking/task/"),
        ("GET", "/tracking/j/task/roots/"),
        ("GET", "/healthz/"),
        ("POST", "/graphql/"),
        ("GET", "/docs/"),
        ("GET", "/nowhere"),
    ],
)
async def test_unknown_paths_trailing_slashes_included_are_404s_without_a_redirect(live, method, path):
    body = b'{"tasks":[{}]}' if method in ("PUT", "POST") else b""
    head = request_head(method, path, "Content-Type: application/json", f"Content-Length: {len(body)}")
    answer = await raw_exchange(live, head + body)
    assert answer.status == 404
    assert "location" not in answer.headers
    assert answer.error()["code"] == 404


async def test_the_pages_keep_their_addresses(http):
    assert (await http.get("/ui/")).status_code == 200
    home = await http.get("/ui")
    assert (home.status_code, home.headers["location"]) == (307, "/ui/")  # relative: never built from Host
    assert (await http.get("/docs")).status_code == 200
    assert (await http.get("/redoc")).status_code == 200


# ---- Accept: text/xml ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("text/xml", "text/xml"),
        ("text/*", "text/xml"),
        ("application/xml;q=0.5, text/xml", "text/xml"),
        ("application/json;q=0.1, text/xml", "text/xml"),
        ("application/xml", "application/xml"),
        ("text/xml, application/xml", "application/xml"),
        ("application/xml, text/xml;q=0.9", "application/xml"),
        ("text/xml;q=0.5, application/json", "application/json"),
        ("*/*", "application/json"),
    ],
)
async def test_xml_is_labelled_with_the_media_type_the_caller_prefers(http, accept, media_type):
    await create(http, {"id": 1, "name": "n"})
    found = await http.get("/tracking/task/1", headers={"Accept": accept})
    missing = await http.get("/tracking/task/99", headers={"Accept": accept})
    for response in (found, missing):
        assert response.headers["content-type"].split(";")[0] == media_type
        if media_type == "text/xml":
            assert response.headers["content-type"] == "text/xml; charset=utf-8"
            xmltodict.parse(response.content)
    assert missing.status_code == 404


# ---- tokens never logged ---------------------------------------------------------------------------------------------


SECRET = "s3cr3t-T0ken_value"
READ_SECRET = "read+only/secret"


def start_gateway(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`tracking-gateway serve` as deployed, with `env` as its only TRACKING_* settings, logging to `log` (a file: a
    pipe nobody reads while it runs would fill up and stall it)."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("TRACKING_")}
    with log.open("w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "gateway"], env={**inherited, **env}, stderr=stderr)


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_tokens_never_reach_the_log_however_they_are_sent(mongo_uri, tmp_path, log_format):
    port = free_port()
    env = {
        "TRACKING_API_TOKENS": SECRET,
        "TRACKING_READ_TOKENS": READ_SECRET,
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": "tracking_test_logs",
        "TRACKING_DATA_DIR": str(tmp_path),
        "TRACKING_PORT": str(port),
        "TRACKING_LOG_LEVEL": "debug",
        "TRACKING_LOG_FORMAT": log_format,
    }
    log = tmp_path / "gateway.log"
    process = start_gateway(env, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            async def ready() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=90, what="the gateway answering /readyz")
            await client.get("/tracking/task/1", params={"token": SECRET})
            await client.get("/tracking/task/1", params={"access_token": "a-mistyped-one", "x": READ_SECRET})
            await client.get("/healthz", params={"X-Auth-Token": SECRET, "q": "kept"})
            await client.get("/tracking/task/1", headers={"X-Auth-Token": SECRET})
            await client.get("/tracking/task/1", headers={"Authorization": f"Bearer {SECRET}"})
            await client.get(f"/tracking/{SECRET}/task/roots", headers={"X-Auth-Token": READ_SECRET})
            query = f'{{ task(id: "{SECRET}") {{ id }} }}'
            await client.post("/graphql", json={"query": query}, headers={"X-Auth-Token": SECRET})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    stderr = log.read_text()
    assert "uvicorn.access" in stderr, stderr
    assert "GET /tracking/task/1?token=[redacted] HTTP/1.1" in stderr, stderr
    assert "access_token=[redacted]&x=[redacted]" in stderr, stderr
    assert "X-Auth-Token=[redacted]&q=kept" in stderr, stderr
    for secret in (SECRET, READ_SECRET, "read%2Bonly%2Fsecret", "a-mistyped-one"):
        assert secret not in stderr, stderr


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Content-Type: application/json", 403),  # no token
        (f"X-Auth-Token: {TOKEN}\r\nAccept: text/html\r\nContent-Type: application/json", 406),
        (f"X-Auth-Token: {TOKEN}\r\nContent-Type: text/plain", 415),
    ],
)
async def test_a_graphql_request_refused_before_its_operation_is_answered_without_inviting_the_body(
    live, headers, status
):
    reader, writer = await connect(live)
    try:
        head = f"POST /graphql HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n{headers}\r\n\r\n"
        writer.write(head.encode())
        answer = await read_answer(reader)
    finally:
        writer.close()
    assert answer.status == status
    assert json.loads(answer.body)["errors"][0]["extensions"]["code"]


@pytest.mark.parametrize("body", [b"null", b"42", b'"x"', b"true"])
async def test_a_graphql_body_that_is_no_object_is_a_request_error(http, body):
    answer = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_subscription_over_http_is_a_request_error_naming_websocket(http, method):
    query = "subscription { taskEvents { kind } }"
    modern = {"Accept": "application/graphql-response+json"}
    if method == "GET":
        answer = await http.get("/graphql", params={"query": query}, headers=modern)
    else:
        answer = await http.post("/graphql", json={"query": query}, headers=modern)
    assert answer.status_code == 400, answer.text
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST" and "WebSocket" in error["message"]


@pytest.mark.parametrize("presented", [f"{TOKEN} ", f"\t{TOKEN}\t", f" {TOKEN}"])
async def test_whitespace_around_a_token_is_no_part_of_it(live, presented):
    answer = await raw_exchange(live, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Auth-Token:{presented}\r\n\r\n".encode())
    assert answer.status == 200
    task = await raw_exchange(
        live, f"GET /tracking/task/1 HTTP/1.1\r\nHost: x\r\nX-Auth-Token:{presented}\r\n\r\n".encode()
    )
    assert task.status == 404  # past the token check: no such task


def test_a_token_percent_encoded_character_by_character_is_redacted(monkeypatch):
    from gateway import observability
    from gateway.observability import never_log, redact

    # This process's registry only (other tests configured tokens of their own).
    monkeypatch.setattr(observability, "_secrets", [])
    monkeypatch.setattr(observability, "_tokens", [])
    never_log(["SeCrEtToKeN123abc"])
    line = '"GET /healthz?q=%53%65CrEtToKeN123abc&x=%41 HTTP/1.1" 200'
    assert redact(line) == '"GET /healthz?q=[redacted]&x=A HTTP/1.1" 200'
    assert redact('"GET /healthz?q=%41 HTTP/1.1" 200') == '"GET /healthz?q=%41 HTTP/1.1" 200'
