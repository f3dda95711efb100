"""ASGI middleware around the whole app: request ids with a last-resort error boundary, and the body limit."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.log_context import REQUEST_ID
from rest import error_response

log = logging.getLogger("gateway.requests")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    """One request header, read straight from the ASGI scope (cheaper than building a Headers object)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestIdMiddleware:
    """Every response carries X-Request-ID (the caller's when it is sane, else a new one). An unhandled error is
    logged with that id and answered 500 with an Error body: no stack trace ever reaches the caller."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        REQUEST_ID.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client left, or was answered 408 by the server, before its body arrived: no one to answer.
            log.info(
                "client gone before the body of %s %s arrived (request id %s)",
                scope["method"],
                scope["path"],
                request_id,
            )
        except Exception:
            log.exception("unhandled error in %s %s (request id %s)", scope.get("method"), scope["path"], request_id)
            if scope["type"] != "http" or started:
                raise
            message = f"internal server error (request id {request_id})"
            response = error_response(500, message, _header(scope, b"accept"))
            await response(scope, receive, send_with_id)


Refusal = Callable[[int, str, Scope], Response]
"""A refusal's answer (status, message, the request's scope) in the shape of the front end the request is for."""


def _rest_refusal(status: int, message: str, scope: Scope) -> Response:
    return error_response(status, message, _header(scope, b"accept"))


class BodySizeLimitMiddleware:
    """413 for bodies over the limit, without reading them whole: a declared Content-Length over the limit is
    refused before the app runs; a chunked body is counted as it streams in and cut off at the limit.

    FastAPI 0.165's own `max_body_size` answers a declared oversize body with text/plain; the contract wants
    the Error body in the negotiated type, hence this middleware."""

    def __init__(self, app: ASGIApp, max_bytes: int, refusal: Refusal | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refusal = refusal or _rest_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status, message = (413, self._message) if declared.isdigit() else (400, "invalid Content-Length")
            await self.refusal(status, message, scope)(scope, receive, send)
            return
        if declared is not None or _header(scope, b"transfer-encoding") is None:
            # A declared length within the limit, or no body at all: nothing to count (uvicorn never hands
            # the app more than Content-Length bytes).
            await self.app(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message)
            return message

        await self.app(scope, counting_receive, send)

    @property
    def _message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes (TRACKING_MAX_BODY_BYTES)"


class HeadAsGetMiddleware:
    """RFC 9110 §9.3.2: HEAD is answered wherever GET is, with the status and headers GET would have (its
    Content-Length included) and no body. FastAPI routes serve only the methods they declare, so a HEAD is run as
    the GET it stands for; the method is HEAD again from the answer's first message on, for the server (which
    then sends no body either), the access log and the metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # The scope is changed in place, not copied: the middleware outside reads what routing adds to it.
        scope["method"] = "GET"

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["method"] = "HEAD"
            elif message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, receive, send_head)
        finally:
            scope["method"] = "HEAD"


class ExpectContinueMiddleware:
    """RFC 9110 §10.1.1: a request sent with `Expect: 100-continue` gets its 100 (Continue) before the operation
    runs, whether or not the operation reads a body: the body is asked for first (the ASGI server answers 100
    Continue when the app first asks for it) and handed to the operation as it arrived. Clients such as the JDK's
    HttpURLConnection fail on a final answer that comes before the 100 Continue they wait for. Requests refused
    before the operation (403, 406, 413) are answered at once, without inviting the body.

    Only for paths under `prefix` (the REST operations, some of which read no body): elsewhere the operation
    reads its body after its own refusals, and the ASGI server's 100 Continue comes right then."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        applies = scope["type"] == "http" and scope["path"].startswith(self.prefix)
        expect = _header(scope, b"expect") if applies else None
        if expect is None or expect.strip().lower() != "100-continue":
            await self.app(scope, receive, send)
            return
        first: Message | Exception | None
        try:
            first = await receive()
        except Exception as error:  # a chunked body over the limit: raised where the operation asks for the body,
            first = error  # so that the app's error handlers answer it (413)

        async def replaying_receive() -> Message:
            nonlocal first
            if first is None:
                return await receive()
            message, first = first, None
            if isinstance(message, Exception):
                raise message
            return message

        await self.app(scope, replaying_receive, send)
