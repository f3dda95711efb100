"""The HTTP server: uvicorn with httptools, and bounds on what a request's head and body may cost.

uvicorn's httptools protocol reads a request line, headers and a body of any size, for as long as the client
takes: a 128 MB header is buffered whole, and a client sending one byte a second holds a connection forever. The
protocol here refuses a head larger than TRACKING_MAX_HEADER_BYTES (414 for a request line alone, else 431),
whether it arrives in one write or byte by byte, a head not complete within TRACKING_HEADER_TIMEOUT_MS of its
first byte (408), and a body not complete within TRACKING_BODY_TIMEOUT_MS of the end of its head (408), with the
contract's Error body, and then closes the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings
from gateway.websocket_protocol import AbortingWebSocketProtocol

_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
_LINGER_S = 2.0
"""After refusing a request, read and drop what the client still sends for this long before closing: closing a
socket with unread data makes the kernel reset it, and the client would lose the answer."""
URL_PARSER_MAX = (1 << 16) - 1
"""The longest request target httptools parses (its URL parser keeps offsets in 16 bits): longer ones are 414s
whatever TRACKING_MAX_HEADER_BYTES says, rather than uvicorn's text/plain 400."""
_HEADER_LINE_OVERHEAD = 4
"""': ' and CRLF around a header's name and value, which the parser hands over without them."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """HttpToolsProtocol bounding the bytes and time of every request head (request line and headers), and the
    time of every request body."""

    max_head_bytes = 64 * 1024
    head_timeout_s = 10.0
    body_timeout_s = 60.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio hands a stream protocol its Transport; BaseTransport is what asyncio.Protocol declares.
        super().connection_made(cast(asyncio.Transport, transport))
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._refusal: bytes | None = None  # a refusal waiting for the answers to earlier pipelined requests
        self._await_head()

    def _await_head(self) -> None:
        self._head_bytes = 0  # bytes received while the head is incomplete
        self._parsed_header_bytes = 0  # the headers as the parser handed them over
        self._reading_head = True
        self._cancel_head_timer()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)
        super().data_received(data)
        # A head still incomplete is bounded by the bytes received (the parser hands over a header only once it
        # is complete). Checked after parsing, so a chunk that completes a small head and carries a body is not
        # counted; heads complete within the chunk are bounded as parsed, below.
        if self._reading_head and not self._refused and self._head_bytes > self.max_head_bytes:
            if self.headers:
                self._refuse_large_headers()
            else:
                self._refuse_long_line(self.max_head_bytes)

    # Parser callbacks: once a request is refused, the rest of the chunk being parsed is ignored.

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        limit = min(self.max_head_bytes, URL_PARSER_MAX)
        if len(self.url) > limit:
            self._refuse_long_line(limit)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        super().on_header(name, value)
        self._parsed_header_bytes += len(name) + len(value) + _HEADER_LINE_OVERHEAD
        if len(self.url) + self._parsed_header_bytes > self.max_head_bytes:
            self._refuse_large_headers()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_head_timer()
        if self._refused:
            return
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):  # a WebSocket has no request body
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_too_slow)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._cancel_body_timer()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._reading_head and not self._refused and not self.transport.is_closing():
            self._refuse(408, f"request head not complete within {self.head_timeout_s:g}s (TRACKING_HEADER_TIMEOUT_MS)")

    def _body_too_slow(self) -> None:
        """The body did not arrive in time: 408 if the answer has not started (the app, waiting for the body,
        then sees the client gone), else the connection is closed (the answer was sent without the body)."""
        self._body_timer = None
        if self._refused or self.transport.is_closing():
            return
        if self.cycle.response_started:
            self.transport.close()
            return
        self._refuse_before_the_body(
            408, f"request body not complete within {self.body_timeout_s:g}s (TRACKING_BODY_TIMEOUT_MS)"
        )

    def shutdown(self) -> None:
        """uvicorn is stopping. A request whose body is still arriving is answered 503 at once: its app, waiting
        for the body, would otherwise be cancelled at the end of the grace period and answered uvicorn's text
        500 (with an error logged). Nothing of it was done (the app had not its body), so it may be sent again."""
        if self._body_timer is not None and not self._refused and not self.cycle.response_started:
            self._cancel_body_timer()
            self._refuse_before_the_body(503, "the gateway is stopping before the request body arrived: send it again")
            return
        super().shutdown()

    def _refuse_before_the_body(self, status: int, message: str) -> None:
        # The app, waiting for the body or still queued behind a pipelined request, sees the client gone.
        self.cycle.disconnected = True
        self.cycle.waiting_for_100_continue = False
        self.cycle.message_event.set()
        self._refuse(status, message)

    def _refuse_long_line(self, limit: int) -> None:
        setting = "TRACKING_MAX_HEADER_BYTES" if limit == self.max_head_bytes else "the HTTP parser's limit"
        self._refuse(414, f"request line longer than {limit} bytes ({setting})")

    def _refuse_large_headers(self) -> None:
        self._refuse(431, f"request headers larger than {self.max_head_bytes} bytes (TRACKING_MAX_HEADER_BYTES)")

    def _refuse(self, status: int, message: str) -> None:
        body = orjson.dumps({"code": status, "message": message})
        head = [
            b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        self._refused = True
        self._cancel_head_timer()
        self._cancel_body_timer()
        self._refusal = b"\r\n".join(head) + b"\r\n\r\n" + body
        self._send_refusal_when_due()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._send_refusal_when_due()

    def _send_refusal_when_due(self) -> None:
        """A refusal goes out once the answers to the requests before it (pipelined) are complete; then the
        connection is closed."""
        if self._refusal is None or self.pipeline or self.transport.is_closing():
            return
        if self.cycle is not None and not (self.cycle.response_complete or self.cycle.disconnected):
            return
        refusal, self._refusal = self._refusal, None
        self.transport.write(refusal)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)


def bounded_protocol(settings: Settings) -> type[BoundedHeadProtocol]:
    """The protocol class with this deployment's bounds (uvicorn instantiates it per connection)."""
    attributes: dict[str, Any] = {
        "max_head_bytes": settings.max_header_bytes,
        "head_timeout_s": settings.header_timeout_ms / 1000,
        "body_timeout_s": settings.body_timeout_ms / 1000,
    }
    return type("ConfiguredHeadProtocol", (BoundedHeadProtocol,), attributes)


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How the gateway serves HTTP, for the CLI and for tests that need the real server."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=bounded_protocol(settings),
        ws=AbortingWebSocketProtocol,
        ws_max_size=settings.websocket_max_message_bytes,  # past it: closed with 1009 (message too big)
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through the gateway's own handler (gateway.observability)
        proxy_headers=False,
        server_header=False,
        # In-flight requests end within the MongoDB deadline; subscriptions are closed after this.
        timeout_graceful_shutdown=max(2, settings.mongodb_timeout_ms // 1000 + 1),
    )
