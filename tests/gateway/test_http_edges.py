"""HTTP as clients nobody here wrote speak it (RFC 9110, RFC 9112): HEAD, a '/' in a job id, trailing slashes, slow
bodies, heads sent in one write, `Expect: 100-continue`, `Accept: text/xml`, and tokens kept out of the logs. On
the gateway's own uvicorn configuration, with raw sockets where a client library would hide what is sent."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import xmltodict

from gateway.embedded import free_port
from tests.helpers import AUTH, TOKEN, eventually, gateway_app, served

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

BODY_TIMEOUT_MS = 1000


@pytest.fixture
async def live(served_gateway) -> int:
    """The gateway behind its own uvicorn configuration (one-second head and body deadlines); its port."""
    return await served_gateway(header_timeout_ms=1000, body_timeout_ms=BODY_TIMEOUT_MS)


@pytest.fixture
async def http(live) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH, timeout=30) as client:
        yield client


class Answer:
    """One HTTP response as read off the socket."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def error(self) -> dict[str, Any]:
        """The Error body, JSON (`{"code", "message"}`) or XML (`<error>`)."""
        if self.headers["content-type"].startswith("application/json"):
            body: dict[str, Any] = json.loads(self.body)
            return body
        error: dict[str, Any] = xmltodict.parse(self.body)["error"]
        return {"code": int(error["code"]), "message": error["message"]}


async def read_answer(reader: asyncio.StreamReader, *, head_only: bool = False, timeout: float = 10) -> Answer:
    """Reads one response: its head, then Content-Length bytes of body (none for an answer to HEAD)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = 0 if head_only else int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return Answer(int(status_line.split()[1]), headers, body)


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, limit=1024 * 1024)


async def raw_exchange(port: int, request: bytes) -> Answer:
    reader, writer = await connect(port)
    try:
        writer.write(request)
        await writer.drain()
        return await read_answer(reader, head_only=request.startswith(b"HEAD "))
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 10) -> bool:
    """Whether the server closes the connection within `timeout` seconds (reading and dropping what comes)."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def request_head(method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: gateway.test", f"X-Auth-Token: {TOKEN}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def create(http: httpx.AsyncClient, *tasks: dict[str, Any]) -> list[dict[str, Any]]:
    response = await http.post("/tracking/task", json={"tasks": list(tasks)})
    assert response.status_code == 200, response.text
    created: list[dict[str, Any]] = response.json()["tasks"]
    return created


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


# ---- bounded bodies --------------------------------------------------------------------------------------------------


async def trickle(writer: asyncio.StreamWriter, body: bytes, every_s: float) -> None:
    """Sends `body` one byte at a time, until it is sent or the server closes."""
    try:
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every_s)
    except ConnectionError:
        pass


async def test_a_body_sent_byte_by_byte_is_refused_in_time_and_the_connection_closed(live, raw_db):
    body = b'{"tasks":[{"name":"' + b"x" * 100 + b'"}]}'
    reader, writer = await connect(live)
    writer.write(
        request_head("POST", "/tracking/task", "Content-Type: application/json", f"Content-Length: {len(body)}")
    )
    started = time.monotonic()
    sending = asyncio.create_task(trickle(writer, body, 0.2))
    try:
        answer = await read_answer(reader)
        waited = time.monotonic() - started
        assert answer.status == 408
        assert "TRACKING_BODY_TIMEOUT_MS" in answer.error()["message"]
        assert answer.headers["connection"] == "close"
        assert BODY_TIMEOUT_MS / 1000 <= waited < BODY_TIMEOUT_MS / 1000 + 2
        assert await closed_by_server(reader)
    finally:
        sending.cancel()
        writer.close()
    assert await raw_db.tasks.count_documents({}) == 0


async def test_a_body_an_operation_does_not_read_is_bounded_too(http, live, raw_db):
    """The link is made and answered at once; the connection does not outlive the body's deadline."""
    await create(http, {"id": 1}, {"id": 2})
    reader, writer = await connect(live)
    writer.write(request_head("PUT", "/tracking/task/1/next?nextTaskId=2", "Content-Length: 1000"))
    sending = asyncio.create_task(trickle(writer, b"x" * 1000, 0.2))
    try:
        assert (await read_answer(reader)).status == 200
        assert await closed_by_server(reader, timeout=BODY_TIMEOUT_MS / 1000 + 3)
    finally:
        sending.cancel()
        writer.close()
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == [2]


async def test_a_body_in_time_after_a_slow_start_is_served(http, live):
    """The deadline is the body's: a request whose head took its time still gets its full body deadline."""
    body = b'{"tasks":[{"id":7}]}'
    reader, writer = await connect(live)
    try:
        head = request_head("POST", "/tracking/task", "Content-Type: application/json", f"Content-Length: {len(body)}")
        writer.write(head)
        await asyncio.sleep(BODY_TIMEOUT_MS / 2000)
        writer.write(body)
        answer = await read_answer(reader)
        assert answer.status == 200, answer.body
        writer.write(request_head("GET", "/tracking/task/7"))  # the connection stays usable
        assert (await read_answer(reader)).status == 200
    finally:
        writer.close()


# ---- request heads, however they arrive ------------------------------------------------------------------------------


async def test_a_head_of_many_small_headers_in_one_write_is_a_431(live):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(6000)) + b"\r\n"
    assert len(head) > 70_000
    answer = await raw_exchange(live, head)
    assert answer.status == 431
    assert "TRACKING_MAX_HEADER_BYTES" in answer.error()["message"]


@pytest.mark.parametrize("kilobytes", [66, 80, 100])
async def test_a_long_request_line_in_one_write_is_a_414(live, kilobytes):
    answer = await raw_exchange(live, b"GET /healthz?" + b"a" * (kilobytes * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 414
    assert "request line" in answer.error()["message"]


async def test_a_head_within_the_limit_in_one_write_is_served(live):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5400)) + b"\r\n"
    assert 60_000 < len(head) < 64 * 1024
    assert (await raw_exchange(live, head)).status == 200


async def test_pipelined_requests_are_each_bounded(live):
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(6000)) + b"\r\n"
    reader, writer = await connect(live)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + big)
        assert (await read_answer(reader)).status == 200
        assert (await read_answer(reader)).status == 431
    finally:
        writer.close()


# ---- Expect: 100-continue (RFC 9110 §10.1.1) -------------------------------------------------------------------------


async def expect_continue(port: int, method: str, target: str, body: bytes, *headers: str) -> Answer:
    """As the JDK's HttpURLConnection does: the head, then wait for 100 Continue, then the body, then the answer."""
    reader, writer = await connect(port)
    try:
        writer.write(request_head(method, target, "Expect: 100-continue", f"Content-Length: {len(body)}", *headers))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        writer.write(body)
        return await read_answer(reader)
    finally:
        writer.close()


async def test_every_operation_answers_100_continue_before_its_final_answer(http, live, raw_db):
    json_type = "Content-Type: application/json"
    created = await expect_continue(live, "POST", "/tracking/task", b'{"tasks":[{"id":1},{"id":2}]}', json_type)
    assert created.status == 200
    # Link operations take no body: JDK clients still announce one and wait for 100 Continue before sending it.
    assert (await expect_continue(live, "PUT", "/tracking/task/1/next?nextTaskId=2", b"{}", json_type)).status == 200
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == [2]
    assert (await expect_continue(live, "DELETE", "/tracking/task/1/next?nextTaskId=2", b"{}")).status == 204
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == []
    updated = await expect_continue(live, "PUT", "/tracking/task/1", b'{"status":"DONE"}', json_type)
    assert (updated.status, json.loads(updated.body)["status"]) == (200, "DONE")
    assert (await expect_continue(live, "GET", "/tracking/task/1", b"")).status == 200
    assert (await expect_continue(live, "DELETE", "/tracking/task/2", b"")).status == 204
    graphql = await expect_continue(live, "POST", "/graphql", b'{"query":"{ task(id: \\"1\\") { id } }"}', json_type)
    assert json.loads(graphql.body)["data"] == {"task": {"id": "1"}}


async def test_a_chunked_body_over_the_limit_after_100_continue_is_a_413(store, tmp_path, raw_db):
    app, settings = gateway_app(store, tmp_path, max_body_bytes=1024)
    async with served(app, settings) as port:
        reader, writer = await connect(port)
        try:
            head = request_head(
                "POST",
                "/tracking/task",
                "Expect: 100-continue",
                "Transfer-Encoding: chunked",
                "Content-Type: application/json",
            )
            writer.write(head)
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
            chunk = b'{"tasks":[{"name":"' + b"x" * 2000 + b'"}]}'
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
            answer = await read_answer(reader)
        finally:
            writer.close()
    assert answer.status == 413
    assert "TRACKING_MAX_BODY_BYTES" in answer.error()["message"]
    assert await raw_db.tasks.count_documents({}) == 0


async def test_a_request_refused_before_its_operation_is_answered_without_inviting_the_body(live):
    reader, writer = await connect(live)
    try:
        writer.write(b"PUT /tracking/task/1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
        answer = await read_answer(reader)
    finally:
        writer.close()
    assert answer.status == 403


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
