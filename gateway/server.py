"""The HTTP server: uvicorn with httptools, and a bound on what a request's head may cost.

uvicorn's httptools protocol reads a request line and headers of any size, for as long as the client takes:
a 128 MB header is buffered whole, and a client sending one byte a second holds a connection forever. The
protocol here refuses a head larger than TRACKING_MAX_HEADER_BYTES (414 for a request line alone, else 431)
and one not complete within TRACKING_HEADER_TIMEOUT_MS of its first byte (408), with the contract's Error body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}
_LINGER_S = 2.0
"""After refusing a head, read and drop what the client still sends for this long before closing: closing a
socket with unread data makes the kernel reset it, and the client would lose the answer."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """HttpToolsProtocol counting the bytes and time of every request head (request line and headers)."""

    max_head_bytes = 64 * 1024
    head_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._await_head()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._reading_head = True
        self._cancel_head_timer()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)
        super().data_received(data)
        # Checked after parsing, so a chunk that completes a small head and carries a body is not counted.
        if self._reading_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            if self.headers:
                self._refuse(431, f"request headers larger than {self.max_head_bytes} bytes")
            else:
                self._refuse(414, f"request line longer than {self.max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(408, f"request head not complete within {self.head_timeout_s:g}s")

    def _refuse(self, status: int, message: str) -> None:
        setting = "TRACKING_HEADER_TIMEOUT_MS" if status == 408 else "TRACKING_MAX_HEADER_BYTES"
        body = orjson.dumps({"code": status, "message": f"{message} ({setting})"})
        head = [
            b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        self._refused = True
        self._cancel_head_timer()
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)


def bounded_protocol(settings: Settings) -> type[BoundedHeadProtocol]:
    """The protocol class with this deployment's bounds (uvicorn instantiates it per connection)."""
    attributes: dict[str, Any] = {
        "max_head_bytes": settings.max_header_bytes,
        "head_timeout_s": settings.header_timeout_ms / 1000,
    }
    return type("ConfiguredHeadProtocol", (BoundedHeadProtocol,), attributes)


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How the gateway serves HTTP, for the CLI and for tests that need the real server."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=bounded_protocol(settings),
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through the gateway's own handler (gateway.observability)
        proxy_headers=False,
        server_header=False,
        # In-flight requests end within the MongoDB deadline; subscriptions are closed after this.
        timeout_graceful_shutdown=max(2, settings.mongodb_timeout_ms // 1000 + 1),
    )
