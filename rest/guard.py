"""The checks every /tracking request passes before any routing work: token (403), then Accept (406)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from rest.codecs import NotAcceptable, response_format
from rest.errors import error_response

PREFIX = "/tracking/"
_READS = frozenset({"GET", "HEAD"})
READ_ONLY_MESSAGE = "this X-Auth-Token may only read (TRACKING_READ_TOKENS)"
FORMAT_STATE_KEY = "response_format"


class TrackingGuard:
    """Pure ASGI, because it runs on the hottest path: as two FastAPI dependencies (a Header parameter and the
    negotiation) these checks cost more than a fifth of a GET by id. Puts the negotiated format in the request
    state for the handlers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        token = accept = None
        for name, value in scope["headers"]:
            if name == b"x-auth-token":
                token = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
        access = scope["state"]["tokens"].access(token)
        if access is None:
            await error_response(403, "missing or unknown X-Auth-Token", accept)(scope, receive, send)
            return
        if scope["method"] not in _READS and access.value != "write":
            await error_response(403, READ_ONLY_MESSAGE, accept)(scope, receive, send)
            return
        try:
            fmt = response_format(accept)
        except NotAcceptable as error:
            await error_response(406, str(error), accept)(scope, receive, send)
            return
        scope.setdefault("state", {})[FORMAT_STATE_KEY] = fmt
        await self.app(scope, receive, send)
