"""One server span per HTTP request, made by this small ASGI middleware (installed only when the app traces):
cheaper than FastAPI's own telemetry, whose per-request work (inspecting the middleware stack, a Headers
object, parsing the Host header, two context switches, wrapped receive and send, its route hooks) cost about
as much as a fast-path GET itself (docs/decisions/tracing.md, "Cost").

The span continues the caller's trace (the propagators' headers, W3C `traceparent` by default), is current
while the request is served (its MongoDB commands, GraphQL operation and log lines are in it), and carries the
attributes OpenTelemetry's HTTP server conventions require: `http.request.method`, `url.path`, `url.scheme`,
`url.query` (names only, every value REDACTED), both without any configured token (a client may put one in
a path or a parameter's name, as the logs redact it), and at the end `http.route` (the route template),
`http.response.status_code` and, for a 5xx or an exception, `error.type`. Named `METHOD route`. A caller's
`tracestate` is continued unless it holds a configured token, is longer than MAX_TRACESTATE or is malformed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.span import _TRACECONTEXT_MAXIMUM_TRACESTATE_KEYS as _MAX_TRACESTATE_MEMBERS
from opentelemetry.trace.span import _member_pattern as _tracestate_member
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability import redacted_query, without_tokens

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
"""The methods the HTTP conventions name; any other is `_OTHER` (a span name must not grow unbounded)."""
MAX_METHOD_ORIGINAL = 32
"""Characters of an unknown method kept in `http.request.method_original`: the request line's method is any token
a client sends, and an attribute of every such span must not grow with it."""


MAX_TRACESTATE = 512
"""Characters of a caller's `tracestate` the gateway continues: the W3C recommendation's minimum a platform must
propagate; a longer one is not continued (the trace itself is)."""


class ServerSpans:
    """Pure ASGI, outermost: a server span around each HTTP request (WebSockets make none: a connection's span
    would stay open for its life; their GraphQL operations are traced, in the trace the handshake continued)."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer
        self._fields = frozenset(field.encode("latin-1") for field in propagate.get_global_textmap().fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No span for the connection, but its operations' spans continue the caller's trace from the
            # handshake's headers, read by the same rules as a request's.
            caller = otel_context.attach(self._callers_context(scope["headers"]))
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(caller)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = self.tracer.start_span(
            scope["method"] if scope["method"] in _METHODS else "HTTP",
            context=self._callers_context(scope["headers"]),
            kind=SpanKind.SERVER,
            attributes=request_attributes(scope),
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        if not span.is_recording():  # unsampled: its trace is current (log lines), nothing else to record
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        status: int | None = None

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failure: BaseException | None = None
        try:
            await self.app(scope, receive, status_send)
        except BaseException as error:
            failure = error
            raise
        finally:
            end_server_span(span, scope, status, failure)
            otel_context.detach(token)

    def _callers_context(self, headers: Iterable[tuple[bytes, bytes]]) -> Context:
        """The caller's trace from the propagators' headers (`traceparent`, `tracestate`, …), or none (an empty
        context: the span starts a trace). A repeated header is one comma-joined value (RFC 9110): two
        `traceparent`s are then malformed, and a malformed one is ignored, as the W3C recommendation says."""
        carrier: dict[str, str] = {}
        for name, value in headers:
            if name in self._fields:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                carrier[key] = f"{carrier[key]},{text}" if key in carrier else text
        state = carrier.get("tracestate")
        if state is not None and not continued_tracestate(state):
            del carrier["tracestate"]
        return propagate.extract(carrier) if carrier else Context()


def continued_tracestate(state: str) -> bool:
    """Whether a caller's `tracestate` is continued: within MAX_TRACESTATE, holding no configured token (it is on
    every span of the trace: a token would reach the collector) and well formed. A malformed one is discarded,
    as W3C Trace Context says (the trace itself is continued), here rather than by the SDK, which logs each
    malformed member in full: any client would write its text into the log, on every request."""
    return len(state) <= MAX_TRACESTATE and well_formed_tracestate(state) and without_tokens(state) == state


def well_formed_tracestate(state: str) -> bool:
    """The SDK's own rules for a `tracestate` (`TraceState.from_header` and its constructor, whose pattern and
    bound are used: private names of the pinned release, so there is one grammar, the SDK's): each member,
    stripped of spaces and tabs, a `key=value` of the W3C grammar, no key twice, at most 32 members; empty
    members allowed."""
    keys: set[str] = set()
    for member in state.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        match = _tracestate_member.fullmatch(member)
        if match is None or match.group(1) in keys:
            return False
        keys.add(match.group(1))
    return len(keys) <= _MAX_TRACESTATE_MEMBERS


def request_attributes(scope: Scope) -> dict[str, str]:
    method = scope["method"]
    attributes = {
        "http.request.method": method if method in _METHODS else "_OTHER",
        "url.path": without_tokens(scope["path"]),
        "url.scheme": scope.get("scheme", "http"),
    }
    if method not in _METHODS:
        attributes["http.request.method_original"] = method[:MAX_METHOD_ORIGINAL]
    if scope.get("query_string"):
        attributes["url.query"] = without_tokens(redacted_query(scope["query_string"].decode("latin-1")))
    return attributes


def route_template(scope: Scope) -> str | None:
    """The template of the route that served the request: the router's own for the API's routes (FastAPI sets
    `scope["route"]` for those alone); for the app's other routes (`/metrics`, `/openapi.json`) and mounts
    (`/static`: `/static/{path}`, as FastAPI's own telemetry names it), the one whose endpoint the router chose;
    for a request answered before the router saw it (a refused token, Accept or body size, a caller's rate), the
    route its method and path were for. None when no route is (a 404 of an unknown path): the path is no
    template."""
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path", None)
    app = scope.get("app")
    if app is None:
        return None
    endpoint = scope.get("endpoint")
    routes = app.router.routes  # a few dozen, for the requests FastAPI does not name (not the API's served ones)
    return _template_of_endpoint(routes, endpoint) if endpoint is not None else _template_matching(routes, scope)


def _template_of_endpoint(routes: Iterable[BaseRoute], endpoint: object) -> str | None:
    for candidate in routes:
        if isinstance(candidate, Mount) and candidate.app is endpoint:
            return _mount_template(candidate)
        if isinstance(candidate, Route) and candidate.endpoint is endpoint:
            return candidate.path
    return None


def _template_matching(routes: Iterable[BaseRoute], scope: Scope) -> str | None:
    """The route the router would have chosen for the request's method and path (Starlette's own matching), or
    one for its path alone when none takes its method."""
    for_path: BaseRoute | None = None
    for candidate in _each_route(routes):
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            for_path = candidate
            break
        if match is Match.PARTIAL and for_path is None:
            for_path = candidate
    if for_path is None:
        return None
    return _mount_template(for_path) if isinstance(for_path, Mount) else getattr(for_path, "path", None)


def _each_route(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes, an included router's among them: FastAPI keeps a router the app includes as one entry,
    its routes under `original_router` (their paths whole: the gateway includes its routers without a prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _each_route(included.routes)
        else:
            yield route


def _mount_template(mount: Mount) -> str:
    return f"{mount.path}/{{path}}"


def end_server_span(span: Span, scope: Scope, status: int | None, failure: BaseException | None) -> None:
    """Name the span by its route template (set by the router, or by rest.fast_read ahead of it) and end it with
    the response's status; a 5xx, no response or an exception marks it failed with `error.type` (the status or
    the exception's type: a message may quote stored values). An unsampled span records nothing: it is left
    alone. Attributes are set one by one: the SDK's `set_attributes` first checks the mapping as a whole
    (abstract-class checks), which costs more than the calls it saves (docs/decisions/tracing.md, "Cost")."""
    if not span.is_recording():
        return
    route = route_template(scope)
    if route is not None:
        span.set_attribute("http.route", route)
        span.update_name(f"{scope['method'] if scope['method'] in _METHODS else 'HTTP'} {route}")
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if failure is not None or status is None or status >= 500:
        span.set_attribute(
            "error.type", type(failure).__qualname__ if failure is not None else str(status or "incomplete")
        )
        span.set_status(StatusCode.ERROR)
    span.end()
