"""The checks every /tracking request passes before any routing work: one token (400), a known caller (403),
within its rate (429), then Accept (406). The request's Caller is in its state for the handlers
(web.state.request_caller)."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest.errors import error_response
from rest.negotiation import NotAcceptable, response_format
from web.auth import RepeatedCredential, read_only_refusal
from web.bearer import BearerRefused, read_only_bearer
from web.state import keep_caller

PREFIX = "/tracking/"
_READS = frozenset({"GET", "HEAD"})
FORMAT_STATE_KEY = "response_format"


def _escaped_segment(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2F")


def routing_path(scope: Scope) -> str | None:
    """The path to route on: the one the client sent (`raw_path`), each segment decoded but for `%` and `/`,
    which stay escaped, so that an encoded slash in a job id is part of that segment rather than a separator
    (RFC 3986 §2.2). None when that is the decoded path already (nothing was percent-encoded)."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # a server that does not say: its decoded path, '%' escaped
        path: str = scope["path"]
        return path.replace("%", "%25") if "%" in path else None
    if b"%" not in raw:
        return None
    return "/".join(_escaped_segment(unquote(segment)) for segment in raw.decode("latin-1").split("/"))


def path_value(value: str) -> str:
    """A path parameter as the client meant it (see `routing_path`)."""
    return unquote(value)


class TrackingGuard:
    """Pure ASGI, because it runs on the hottest path: as two FastAPI dependencies (a Header parameter and the
    negotiation) these checks cost more than a fifth of a GET by id. Puts the negotiated format in the request
    state for the handlers, and routes on the path the client sent (`routing_path`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        accept = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"accept"), None)
        callers = scope["state"]["callers"]
        try:
            caller = await callers.of_request(scope["headers"])
        except RepeatedCredential as error:
            await error_response(400, error.message, accept)(scope, receive, send)
            return
        except BearerRefused as refused:  # 401 invalid_token, 403 insufficient_scope, 503 issuer unreachable
            await error_response(refused.status, refused.message, accept, refused.headers())(scope, receive, send)
            return
        if caller is None:
            challenge = {"WWW-Authenticate": callers.challenge} if callers.challenge else None
            await error_response(403, "missing or unknown X-Auth-Token", accept, challenge)(scope, receive, send)
            return
        keep_caller(scope, caller)
        limited = await scope["state"]["caller_limits"].refusal(caller)
        if limited is not None:
            retry = {"Retry-After": str(limited.retry_after_s)}
            await error_response(429, limited.message, accept, retry)(scope, receive, send)
            return
        if scope["method"] not in _READS and not caller.may_write:
            if caller.issuer is not None:
                read_only = read_only_bearer()
                await error_response(403, read_only.message, accept, read_only.headers())(scope, receive, send)
                return
            await error_response(403, read_only_refusal(caller), accept)(scope, receive, send)
            return
        try:
            fmt = response_format(accept)
        except NotAcceptable as error:
            await error_response(406, str(error), accept)(scope, receive, send)
            return
        scope["state"][FORMAT_STATE_KEY] = fmt
        routed = routing_path(scope)
        if routed is None:
            await self.app(scope, receive, send)
            return
        # In place, not copied: the middleware outside reads what routing adds to the scope. The decoded path is
        # back for the answer (the server's access log shows it).
        decoded, scope["path"] = scope["path"], routed

        async def send_restoring(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["path"] = decoded
            await send(message)

        try:
            await self.app(scope, receive, send_restoring)
        finally:
            scope["path"] = decoded
