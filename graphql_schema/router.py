"""The /graphql endpoint: HTTP (with GraphiQL in a browser) and WebSocket (graphql-transport-ws, graphql-ws)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import orjson
from cross_web import HTTPException as StrawberryHTTPException
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import HTMLResponse
from starlette.background import BackgroundTask
from starlette.datastructures import ImmutableMultiDict
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.types import QueryParams
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from graphql_schema.context import Context
from graphql_schema.credentials import (
    presented_credential,
    refuse_bearer_upgrade,
    refuse_upgrade,
)
from graphql_schema.errors import OPERATION_RESOLUTION_FAILURE, RATE_LIMITED
from graphql_schema.http import (
    GRAPHQL_RESPONSE_TYPE,
    JSON_TYPE,
    NotAcceptable,
    error_response,
    response_media_type,
    response_media_type_or_json,
    status_without_data,
)
from graphql_schema.large_answers import EncodedAnswer, encoded_off_the_loop, is_large, release_after_large_answer
from graphql_schema.schema import build_schema
from graphql_schema.websocket_handlers import TOKEN_REJECTION, LegacyWSHandler, TransportWSHandler
from models import InvalidOperation
from web.auth import Caller, Credential, RepeatedCredential
from web.bearer import BearerRefused
from web.json_texts import RepeatedMember, refuse_repeated_members, without_byte_order_mark
from web.limits import RequestLimits
from web.page_security import GRAPHIQL, page_response, signing_in
from web.paths import GRAPHQL_PATH
from web.state import gateway_state, keep_caller, request_caller

_REQUEST_PARAMETERS = ("query", "operationName", "variables", "extensions")
"""A GraphQL-over-HTTP GET request's parameters."""


class _RefusedJSON(json.JSONDecodeError):
    """A body or message that parses but is too deep or too long; its message names the limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)
        self.msg = message


class TokenRefused(Exception):
    """A GraphQL request without a valid token: 403 with a GraphQL-shaped body (see `install_token_refusal`)."""


CONNECTION_INIT_WAIT = timedelta(minutes=1)
"""How long a WebSocket connection may go without sending its connection_init, over either protocol, before it
is closed with 4408: Strawberry's own for graphql-transport-ws, which graphql-ws lacks
(websocket_handlers.LegacyWSHandler)."""

GRAPHIQL_PAGE = (Path(__file__).parent / "graphiql.html").read_text()
"""GraphiQL on assets the gateway serves itself (no CDN), asking for the token once."""


class TrackingGraphQLRouter(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        verifier = gateway_state(request)["oidc"]
        token_endpoint = verifier.page_token_endpoint if verifier is not None else None
        return page_response(GRAPHIQL_PAGE, signing_in(GRAPHIQL, token_endpoint))

    def __init__(self, *args: Any, limits: RequestLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Strawberry's, answering as the GraphQL-over-HTTP specification has it: the media type by Accept (406
        when neither is acceptable), a request error as `errors[]` with a code and no `data` (never text/plain),
        a mutation over GET 405 with `Allow: POST`, and under application/graphql-response+json 4xx/5xx when
        execution never started."""
        if self.is_websocket_request(request):
            if isinstance(context, Context) and context.repeated_credential is not None:
                await refuse_upgrade(request, context.repeated_credential)
                return request
            if isinstance(context, Context) and context.refused_bearer is not None:
                await refuse_bearer_upgrade(request, context.refused_bearer)
                return request
            return await super().run(request, context, root_value)
        if not _asks_for_graphiql(request):
            caller = await _authenticated(request)
            if caller is None:
                raise TokenRefused(TOKEN_REJECTION)  # before the body is read: no 100 Continue for a refused request
            limited = await gateway_state(request)["caller_limits"].refusal(caller)
            if limited is not None:
                media_type = response_media_type_or_json(request.headers.get("accept"))
                retry = {"Retry-After": str(limited.retry_after_s)}
                return error_response(429, limited.message, RATE_LIMITED, media_type, retry)
        accept = request.headers.get("accept")
        try:
            media_type = response_media_type(accept) if not _asks_for_graphiql(request) else JSON_TYPE
        except NotAcceptable as error:
            return error_response(406, str(error), "BAD_REQUEST", JSON_TYPE)
        if request.method == "POST" and not _is_json(request.headers.get("content-type")):
            shown = request.headers.get("content-type")
            message = f"cannot read {f'Content-Type {shown!r}' if shown else 'a body without Content-Type'}: "
            return error_response(415, message + f"send {JSON_TYPE} (GraphQL over HTTP)", "BAD_REQUEST", media_type)
        try:
            response = await super().run(request, context=context, root_value=root_value)
        except StrawberryHTTPException as error:
            return _request_error(request, error, media_type)
        except HTTPException as error:  # the body limit, cutting off a streamed body
            return error_response(error.status_code, str(error.detail), "BAD_REQUEST", media_type)
        if media_type == GRAPHQL_RESPONSE_TYPE and response.media_type == JSON_TYPE:
            response.status_code = _status_without_data(request)
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_TYPE}; charset=utf-8"
        if request.scope.get(_LARGE_KEY) and isinstance(response, Response) and response.background is None:
            response.background = BackgroundTask(release_after_large_answer)  # once the answer is sent
        return response

    async def parse_http_body(self, request: Any) -> Any:
        """As Strawberry parses it, and `operationName` checked as Strawberry checks `query` and `variables`
        (GraphQL over HTTP: a string or null); a list or a number would be run as an unknown name."""
        parsed = await super().parse_http_body(request)
        for data in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(data.operation_name, str | None):
                raise StrawberryHTTPException(
                    400, "The GraphQL operation's `operationName` must be a string or null, if provided."
                )
        return parsed

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """No `data` entry when execution never started (GraphQL spec §7.1.2): errors that name no path and no
        data mean a request error (parsing, validation, variables, a refused operation)."""
        answer = await super().process_result(request, result)
        if result.data is None and result.errors and all(error.path is None for error in result.errors):
            answer.pop("data", None)
            request.scope[_STATUS_KEY] = status_without_data(answer.get("errors") or [])
        if is_large(result.extensions):
            request.scope[_LARGE_KEY] = True
            return cast(GraphQLHTTPResponse, await encoded_off_the_loop(cast(dict[str, Any], answer)))
        return answer

    def encode_json(self, data: object) -> str | bytes:
        """orjson: several times faster than the standard library on a whole job's answer. It writes UTF-8 where
        the standard library escapes non-ASCII as \\uXXXX (the same JSON); what it cannot encode (an integer
        past 64 bits) goes to the standard library as before. Always text: Strawberry sends bytes over a
        WebSocket as binary frames, which graphql-transport-ws clients (browsers) do not read as messages. A
        large answer comes encoded already (graphql_schema.large_answers)."""
        if isinstance(data, EncodedAnswer):
            return data.text
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return super().encode_json(data)

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        """A GET request's `variables` and `extensions` are JSON objects in query parameters (GraphQL over HTTP):
        one that is not is refused naming it (Strawberry's message speaks of a request body), within the limits
        a body has. Each parameter comes once: which of two a proxy in front read is unknowable."""
        parsed: dict[str, Any] = dict(params)
        for name in _REQUEST_PARAMETERS:
            # Starlette's query parameters (what the FastAPI adapter hands over) keep every value of a name.
            count = len(params.getlist(name)) if isinstance(params, ImmutableMultiDict) else 1
            if count > 1:
                raise StrawberryHTTPException(400, f"the {name} query parameter is given {count} times: give it once")
        for name in ("variables", "extensions"):
            text = parsed.get(name)
            if not text or text == "null":  # null is no variables, as in a POST body
                parsed.pop(name, None)
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as error:
                raise StrawberryHTTPException(400, f"the {name} query parameter is not JSON: {error}") from None
            if not isinstance(value, dict):
                raise StrawberryHTTPException(400, f"the {name} query parameter is not a JSON object")
            try:
                self.limits.refuse_oversized_document(value, name)
                refuse_repeated_members(text)
            except InvalidOperation as error:
                raise StrawberryHTTPException(400, error.message) from None
            except RepeatedMember as error:
                raise StrawberryHTTPException(400, f"the {name} query parameter is ambiguous JSON: {error}") from None
            parsed[name] = value
        return parsed

    def decode_json(self, data: str | bytes) -> object:
        """orjson refuses invalid UTF-8, lone surrogates and numbers beyond a double with a JSONDecodeError (the
        standard library raises UnicodeDecodeError, ValueError or RecursionError); the limits bound the rest."""
        data = without_byte_order_mark(data)
        decoded = orjson.loads(data)
        if not isinstance(decoded, dict | list):  # a list is a batch, refused as such by Strawberry
            raise _RefusedJSON(f"a GraphQL request is a JSON object with a query, not {type(decoded).__name__}")
        try:  # bounded before the members check reads it again
            self.limits.refuse_oversized_document(decoded, "request")
        except InvalidOperation as error:
            raise _RefusedJSON(error.message) from None
        try:
            refuse_repeated_members(data)
        except RepeatedMember as error:
            raise _RefusedJSON(f"ambiguous JSON: {error}") from None
        return decoded

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A WebSocket may carry the token as a header or in the connection_init payload."""
        if context.authenticated:
            return await super().on_ws_connect(context)
        try:
            caller = await context.callers.resolve(presented_credential(context.connection_params))
        except BearerRefused as refused:
            raise ConnectionRejectionError({"message": refused.message}) from None
        if caller is None:
            raise ConnectionRejectionError({"message": TOKEN_REJECTION})
        context.grant(caller)
        return await super().on_ws_connect(context)


_LARGE_KEY = "tracking.graphql_large_answer"
"""Set by `process_result` on a request whose answer is large (graphql_schema.large_answers), for `run`."""
_STATUS_KEY = "tracking.graphql_status"
"""Where `process_result` leaves the status of an answer without data for `run` (the same request's scope)."""


def _status_without_data(request: Request) -> int:
    """The status `process_result` chose for an answer without data under application/graphql-response+json;
    200 when execution started."""
    status = request.scope.get(_STATUS_KEY, 200)
    return status if isinstance(status, int) else 200


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == JSON_TYPE


def _request_error(request: Request, error: StrawberryHTTPException, media_type: str) -> Response:
    """A request Strawberry refused, as GraphQL over HTTP answers it. An operation that cannot be determined
    is a GraphQL request error (200 under application/json, 400 under application/graphql-response+json); a
    mutation over GET is 405; anything else is a request that is not well-formed (400)."""
    cause = error.__cause__
    if isinstance(cause, json.JSONDecodeError):  # Strawberry's parse_json names no cause: say what is wrong
        return error_response(error.status_code, f"{error.reason}: {cause.msg}", "BAD_REQUEST", media_type)
    if isinstance(cause, CannotGetOperationTypeError):
        status = 200 if media_type == JSON_TYPE else 400
        return error_response(status, cause.as_http_error_reason(), OPERATION_RESOLUTION_FAILURE, media_type)
    mutation = isinstance(cause, InvalidOperationTypeError) and cause.operation_type is OperationType.MUTATION
    if mutation and request.method == "GET":
        message = f"{error.reason}: send mutations with POST (GraphQL over HTTP)"
        return error_response(405, message, "BAD_REQUEST", media_type, {"Allow": "POST"})
    return error_response(error.status_code, error.reason, "BAD_REQUEST", media_type)


async def _refuse_token(request: Request, _: Exception) -> Response:
    media_type = response_media_type_or_json(request.headers.get("accept"))
    challenge = gateway_state(request)["callers"].challenge  # when bearer tokens are accepted too (RFC 6750)
    return error_response(
        403, TOKEN_REJECTION, "FORBIDDEN", media_type, {"WWW-Authenticate": challenge} if challenge else None
    )


def install_token_refusal(app: FastAPI) -> None:
    """A missing or unknown token on /graphql: 403, as GraphQL clients read it (`errors[]` with the code
    FORBIDDEN). Which tokens are accepted is the registry's one rule (web.auth); only the shape differs
    from the REST Error body."""
    app.add_exception_handler(TokenRefused, _refuse_token)


async def _authenticated(request: Request) -> Caller | None:
    """The request's caller, kept in its state (web.state) for the context, the access log and the metrics."""
    caller = request_caller(request.scope) or await gateway_state(request)["callers"].of_request(
        request.scope["headers"]
    )
    if caller is not None:
        keep_caller(request.scope, caller)
    return caller


def _asks_for_graphiql(request: Request) -> bool:
    """A browser opening /graphql gets the GraphiQL page without a token (no operation runs); the token goes
    in GraphiQL's headers pane. Mirrors Strawberry's own test for rendering the IDE."""
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET" and "query" not in request.query_params and ("text/html" in accept or "*/*" in accept)
    )


async def _context(connection: HTTPConnection) -> Context:
    """The request's context, with what its credential allows (`connection`: the HTTP request or the WebSocket,
    as FastAPI hands either to a dependency). A repeated X-Auth-Token is refused: at once over HTTP
    (RepeatedCredential, 400), by `run` for a WebSocket (a dependency cannot answer an upgrade)."""
    request = connection if isinstance(connection, Request) else None
    websocket = connection if isinstance(connection, WebSocket) else None
    state = gateway_state(connection)
    repeated, refused = None, None
    credential: Credential | None = None
    try:
        credential = state["callers"].credential(connection.scope["headers"])
        caller = request_caller(connection.scope) or await state["callers"].resolve(credential)
    except RepeatedCredential as error:
        if websocket is None:
            raise
        credential, caller, repeated = None, None, error
    except BearerRefused as error:  # over HTTP: answered by its handler (graphql_schema.credentials)
        if websocket is None:
            raise
        caller, refused = None, error
    if request is not None and caller is not None:
        keep_caller(request.scope, caller)  # `run` reads it again rather than verifying the token twice
    if request is not None and caller is None and not _asks_for_graphiql(request):
        raise TokenRefused(TOKEN_REJECTION)
    settings = state["settings"]
    context = Context(
        state["store"],
        settings.graphql_max_traversal,
        caller,
        state["callers"],
        state["limits"],
        settings.graphql_max_page,
        settings.subscription_resume_ms / 1000,
        settings.graphql_max_cost,
        max_subscriptions=settings.subscriptions_per_connection,
        max_history=settings.graphql_max_history,
    )
    context.max_event_cost = settings.graphql_max_event_cost
    context.over_websocket = websocket is not None
    context.credential, context.repeated_credential, context.refused_bearer = credential, repeated, refused
    context.compiled = settings.graphql_compiled
    context.caller_limits = state["caller_limits"]
    context.tracer = state["tracer"]
    return context


def graphql_router(
    max_depth: int, max_aliases: int, max_tokens: int, max_fragment_depth: int, limits: RequestLimits
) -> TrackingGraphQLRouter:
    return TrackingGraphQLRouter(
        build_schema(max_depth, max_aliases, max_tokens, max_fragment_depth),
        path=GRAPHQL_PATH,
        graphql_ide="graphiql",
        context_getter=_context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        # The bound is TRACKING_SUBSCRIPTIONS_PER_CONNECTION, counted by the context and refused with a coded
        # error naming it; Strawberry's own (100, uncoded, counting queries too) would refuse first.
        max_subscriptions_per_connection=None,
        connection_init_wait_timeout=CONNECTION_INIT_WAIT,
        limits=limits,
    )
