"""HTTP on the wire (RFC 9112): slow bodies, bodies an operation does not read, heads sent in one write,
pipelined requests and `Expect: 100-continue`, on the gateway's own uvicorn configuration with raw sockets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.gateway.wire import (
    BODY_TIMEOUT_MS,
    Answer,
    closed_by_server,
    connect,
    create,
    raw_exchange,
    read_answer,
    request_head,
)
from tests.helpers import gateway_app, served

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)


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


# ---- stopping ------------------------------------------------------------------------------------------------------


async def test_a_request_whose_body_is_arriving_when_the_gateway_stops_is_answered_503_at_once(store, tmp_path, raw_db):
    """Its operation waits for the body: at the end of the grace period uvicorn would cancel it and answer a text
    500 (logging an error). It is answered the contract's 503 when stopping begins; nothing was done."""
    app, settings = gateway_app(store, tmp_path, body_timeout_ms=60_000)
    body = b'{"tasks":[{"name":"' + b"x" * 100 + b'"}]}'
    async with served(app, settings) as port:
        reader, writer = await connect(port)
        json_type = "Content-Type: application/json"
        writer.write(
            request_head(
                "POST",
                "/tracking/task",
                json_type,
                "Expect: 100-continue",
                f"Content-Length: {len(body)}",
            )
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim  # the operation is waiting for the body
        writer.write(body[:10])
        await writer.drain()
        stopping = time.monotonic()
    try:
        answer = await read_answer(reader)
    finally:
        writer.close()
    assert answer.status == 503, answer
    assert "send it again" in answer.error()["message"]
    assert answer.headers["connection"] == "close"
    assert time.monotonic() - stopping < settings.mongodb_timeout_ms / 1000  # before the grace period's end
    assert await raw_db.tasks.count_documents({}) == 0
