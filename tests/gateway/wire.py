"""What the HTTP-level tests share: responses read off a raw socket (where a client library would hide what is
sent), request heads written by hand, and a create through the API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import xmltodict

from tests.helpers import TOKEN

BODY_TIMEOUT_MS = 1000
"""The body deadline of the `live` gateway (tests/gateway/conftest.py)."""


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
