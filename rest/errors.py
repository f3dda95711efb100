"""Every failure as an Error body (`{"code", "message"}`, or `<error>` in XML) with its status code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from models import (
    CursorExpired,
    GraphError,
    IdAllocationFailed,
    InvalidOperation,
    PreconditionFailed,
    StorageUnavailable,
    SubscriberTooSlow,
    TaskAlreadyExists,
    TaskNotFound,
    TooManySubscriptions,
    TraversalTooLarge,
)
from rest.encoding import encode
from rest.negotiation import BadRequest, UnsupportedMediaType, response_format_or_json

STATUS_OF_GRAPH_ERROR: dict[type[GraphError], int] = {
    TaskNotFound: 404,
    TaskAlreadyExists: 400,  # the legacy API answers 400, not 409, for an id that already exists
    InvalidOperation: 400,
    StorageUnavailable: 503,
    IdAllocationFailed: 409,  # a conflict with concurrent direct writes: trying again works
    # No REST operation raises these today (whole-job reads, event cursors and subscriptions are GraphQL's);
    # should one ever surface, it is answered as what it is, never as a 500.
    TraversalTooLarge: 400,  # like every other bound on a request's work
    CursorExpired: 410,  # the events after the cursor are gone for good
    TooManySubscriptions: 429,  # a bound on what is open at once: trying again later works
    SubscriberTooSlow: 503,  # the server ended it; resuming works
    PreconditionFailed: 412,  # RFC 9110 section 15.5.13: If-Match named none of the task's current ETags
}
_PARAMETER_HINTS = {"taskId": "must be a decimal int64 > 0", "root": "must be true or false"}


def error_response(status: int, message: str, accept: str | None, headers: dict[str, str] | None = None) -> Response:
    fmt = response_format_or_json(accept)
    body = encode({"error": {"code": status, "message": message}}, fmt)
    return Response(body, status_code=status, media_type=fmt.value, headers=headers)


def graph_error_response(error: GraphError, accept: str | None) -> Response:
    """The answer to a graph store error, as the exception handlers below give it; an error type without a
    status is raised again (a 500, as an unhandled error)."""
    for error_type in type(error).__mro__:
        status = STATUS_OF_GRAPH_ERROR.get(error_type)
        if status is not None:
            return error_response(status, error.message or str(error), accept)
    raise error


def _describe_parameter_errors(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        name = str(item["loc"][-1]) if item["loc"] else "request"
        parts.append(f"{name}: {_PARAMETER_HINTS.get(name, item['msg'])}")
    return "; ".join(dict.fromkeys(parts))


def _allowed_methods(routes: list[APIRoute], path: str, named: str | None) -> set[str]:
    """Every method some route serves at this path, HEAD wherever GET is (the gateway answers HEAD as GET).
    Starlette names (in `named`, an Allow value) only the first route whose path matched, and
    /tracking/task/{taskId} has one route per method."""
    allowed = {method for route in routes if route.path_regex.match(path) for method in route.methods or ()}
    allowed = allowed or {method.strip() for method in (named or "").split(",") if method.strip()}
    return allowed | {"HEAD"} if "GET" in allowed else allowed


def install_error_handlers(app: FastAPI, routes: list[APIRoute]) -> None:
    def answer(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handler(request: Request, error: Exception) -> Response:
            return error_response(status, getattr(error, "message", None) or str(error), request.headers.get("accept"))

        return handler

    for error_type, status in STATUS_OF_GRAPH_ERROR.items():
        app.add_exception_handler(error_type, answer(status))
    app.add_exception_handler(BadRequest, answer(400))
    app.add_exception_handler(UnsupportedMediaType, answer(415))

    async def invalid_parameters(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return error_response(400, _describe_parameter_errors(error), request.headers.get("accept"))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        headers = dict(error.headers) if error.headers else None
        named = headers.get("Allow") if headers else None
        allowed = _allowed_methods(routes, request.url.path, named) if error.status_code == 405 else set()
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        return error_response(error.status_code, str(error.detail), request.headers.get("accept"), headers)

    app.add_exception_handler(RequestValidationError, invalid_parameters)
    app.add_exception_handler(HTTPException, http_error)
