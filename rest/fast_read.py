"""GET /tracking/task/{taskId}, the hottest operation, answered ahead of FastAPI's routing.

Routing, the dependency solver and the exception middleware cost about as much as the read itself on this
operation. Everything outside this middleware still runs as for any request (request id, metrics, HEAD as GET,
CORS, the token and Accept checks of TrackingGuard, the body limit, 100 Continue), and the answer is the one the
routed operation gives, built by the same functions: only the path test and the error mapping are done here. A
path this does not recognise as a valid id (not decimal digits, 0, beyond int64) goes on to the router, which
answers it as it always did (the 400 naming `taskId`)."""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from models import INT64_MAX, GraphError
from rest.errors import graph_error_response
from rest.guard import FORMAT_STATE_KEY, PREFIX
from rest.negotiation import Format
from rest.routes import read_task, router
from web.state import caller_store

TASK_PREFIX = f"{PREFIX}task/"


def _read_route() -> APIRoute:
    """The routed operation this middleware stands in for (its path template labels the metrics)."""
    (route,) = (r for r in router.routes if isinstance(r, APIRoute) and r.name == "get_task")
    return route


def task_id_of(path: str) -> int | None:
    """The task id of `/tracking/task/{taskId}` when the id is valid (decimal digits, 1..INT64_MAX); else None."""
    if not path.startswith(TASK_PREFIX):
        return None
    digits = path[len(TASK_PREFIX) :]
    if not (digits.isascii() and digits.isdigit()):
        return None
    task_id = int(digits)
    return task_id if 0 < task_id <= INT64_MAX else None


class FastTaskRead:
    """Pure ASGI: serves `GET /tracking/task/{taskId}` itself and hands every other request to `app`. It must
    sit inside TrackingGuard (which has checked the token and put the negotiated format in the scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route = _read_route()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task_id = task_id_of(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if task_id is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        state = scope["state"]
        store = caller_store(scope)
        fmt: Format = state[FORMAT_STATE_KEY]
        try:
            response = await read_task(Request(scope), store, task_id, fmt)
        except GraphError as error:
            response = graph_error_response(error, _first_accept(scope))
        await response(scope, receive, send)


def _first_accept(scope: Scope) -> str | None:
    """The Accept header as the routed operation's error handlers read it (the first one)."""
    for name, value in scope["headers"]:
        if name == b"accept":
            return bytes(value).decode("latin-1")
    return None
