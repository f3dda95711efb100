"""Every failure as an Error body (`{"code", "message"}`, or `<error>` in XML) with its status code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from models import (
    ChangeUnread,
    CommitOutcomeUnknown,
    CursorExpired,
    GraphError,
    IdAllocationFailed,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidOperation,
    JobOutsideScope,
    PreconditionFailed,
    StorageUnavailable,
    SubscriberTooSlow,
    TaskAlreadyExists,
    TaskNotFound,
    TooManySubscriptions,
    TraversalTooLarge,
    etag_of_version,
)
from rest.encoding import encode
from rest.negotiation import BadRequest, UnsupportedMediaType, response_format_or_json

STATUS_OF_GRAPH_ERROR: dict[type[GraphError], int] = {
    TaskNotFound: 404,
    JobOutsideScope: 403,  # the caller's token may not change that job (a read of it would be 404)
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
    PreconditionFailed: 412,  # RFC 9110 section 15.5.13: a precondition (If-Match, If-None-Match) was false
    # Sent for commit, outcome unknown: not a refusal (503 promises nothing changed). 504: the upstream, MongoDB,
    # gave no answer in time; clients do not retry it blindly, and the message says how to learn the outcome.
    CommitOutcomeUnknown: 504,
    # Committed, its answer unread (a read after the commit failed): no refusal either, so not 503; 504 as the
    # upstream gave no answer, the message saying the change was made.
    ChangeUnread: 504,
    IdempotencyKeyReused: 422,  # the Idempotency-Key draft: the key was used with another payload
    IdempotencyKeyInFlight: 409,  # the Idempotency-Key draft: a request with the key is still being processed
}
NEGOTIATED = {"Vary": "Accept"}
"""The header of an answer whose format Accept chose (RFC 9110 section 12.5.5)."""
_PARAMETER_HINTS = {"taskId": "must be a decimal int64 > 0", "root": "must be true or false"}


def error_response(status: int, message: str, accept: str | None, headers: dict[str, str] | None = None) -> Response:
    """The Error body in the format Accept asks for, saying so (`Vary: Accept`) wherever it is answered."""
    fmt = response_format_or_json(accept)
    body = encode({"error": {"code": status, "message": message}}, fmt)
    return Response(body, status_code=status, media_type=fmt.value, headers={**NEGOTIATED, **(headers or {})})


def graph_error_response(error: GraphError, accept: str | None) -> Response:
    """The answer to a graph store error, as the exception handlers below give it; an error type without a
    status is raised again (a 500, as an unhandled error)."""
    for error_type in type(error).__mro__:
        status = STATUS_OF_GRAPH_ERROR.get(error_type)
        if status is not None:
            return error_response(status, error.message or str(error), accept, _headers_of(error, accept))
    raise error


def _headers_of(error: GraphError, accept: str | None) -> dict[str, str] | None:
    """A 412 carries the current ETag of the task's representation the caller negotiated (RFC 9110 section
    8.8.3: the answer's ETag is the selected representation's), so that it can look and try again."""
    version = error.current_version if isinstance(error, PreconditionFailed) else None
    return {"ETag": etag_of_version(version, response_format_or_json(accept).value)} if version is not None else None


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

    async def graph_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, GraphError)
        return graph_error_response(error, request.headers.get("accept"))

    for error_type in STATUS_OF_GRAPH_ERROR:
        app.add_exception_handler(error_type, graph_error)
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
