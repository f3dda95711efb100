"""Metrics (Prometheus, at /metrics) and logs (one format for the gateway's and uvicorn's lines, text or JSON,
each line carrying the id of the request being served)."""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode

import orjson
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.actors import ACTING
from models.log_context import REQUEST_ID
from models.tokens import SECRET_BYTES
from web.auth import Caller
from web.paths import GRAPHQL_PATH
from web.state import CALLER_NAME, request_caller

HTTP_REQUESTS = Counter(
    "tracking_http_requests_total", "HTTP requests answered, by route template.", ["route", "method", "status"]
)
CALLER_REQUESTS = Counter(
    "tracking_caller_requests_total",
    "HTTP requests answered, by caller: a token's name (the environment's env-api-1, …), `jwt` for every JWT "
    "subject (unbounded, so never a label), `-` before a caller was known.",
    ["caller", "status"],
)
HTTP_LATENCY = Histogram(
    "tracking_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class HttpMetrics:
    """Counts and times every HTTP request by its route template (`/tracking/task/{taskId}`), so the label set
    stays bounded whatever paths clients send: unrouted requests (refused before routing, or unknown paths)
    share one label."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # Known once its credential is checked (web.state.act_as); whatever ran before in this context (a
        # server serving requests in one task) is no part of this request, and nothing of it outlives it.
        named, acting = CALLER_NAME.set(None), ACTING.set(None)

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except ClientDisconnect:
            status = 499  # as nginx counts it: the client left before its request was read; no server error
            raise
        finally:
            route = getattr(scope.get("route"), "path", None) or "unrouted"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)
            CALLER_REQUESTS.labels(caller_metric_label(request_caller(scope)), str(status)).inc()
            CALLER_NAME.reset(named)
            ACTING.reset(acting)


def caller_metric_label(caller: Caller | None) -> str:
    """A caller as a metric label: bounded by the number of tokens (JWT subjects are not: `jwt` for them all)."""
    if caller is None:
        return "-"
    return caller.name if caller.issuer is None else "jwt"


async def metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


_CALLER_SUFFIX = " caller=%s"


class _RequestIdFilter(logging.Filter):
    """Every line carries the id of the request being served and, when it is traced, its trace and span ids
    (W3C hex, as trace back ends show them); "-" otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        caller = CALLER_NAME.get() or "-"
        record.caller = caller
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and not str(record.msg).endswith(_CALLER_SUFFIX):
            record.msg = f"{record.msg}{_CALLER_SUFFIX}"  # who made the request answered (once per line)
            record.args = (*_without_task_data(args), caller)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = trace.format_trace_id(span.trace_id)
            record.span_id = trace.format_span_id(span.span_id)
        else:
            record.trace_id = record.span_id = "-"
        return True


def _without_task_data(access_args: tuple[object, ...]) -> tuple[object, ...]:
    """uvicorn's access line arguments (client, method, path with query, version, status) with a GraphQL GET's
    task data redacted (GRAPHQL_TASK_DATA), as its span's url.query has it."""
    if len(access_args) < 3 or not isinstance(access_args[2], str):
        return access_args
    path, _, query = access_args[2].partition("?")
    if path != GRAPHQL_PATH or not query:
        return access_args
    return (*access_args[:2], f"{path}?{redacted_query(query, GRAPHQL_TASK_DATA)}", *access_args[3:])


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(trace_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(trace_id)s %(span_id)s %(message)s"
REDACTED = "[redacted]"
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:[\w.-]*token|[\w.-]*api[_-]?key|authorization|auth|password|secret)=)[^&;\s\"']*"
)
"""A query parameter whose name says it holds a credential (`?token=`, `access_token=`, `X-Auth-Token=`,
`api_key=`, …): its value is never logged, even when it is no configured token (a mistyped one is still a
secret)."""
_NAMED_SECRET_LENGTH = math.ceil(SECRET_BYTES * 4 / 3)
"""A named token's secret, `SECRET_BYTES` random bytes in unpadded base64url: 43 characters."""
_NAMED_TOKEN_SHAPE = re.compile(
    rf"(?<![\w-])(?=[\w-]*[A-Z])(?=[\w-]*[a-z])[A-Za-z0-9_-]{{{_NAMED_SECRET_LENGTH}}}(?![\w-])"
)
"""What a named token's secret looks like (models.tokens: 32 random bytes, base64url: 43 characters, both cases
all but certainly among them): redacted wherever it appears, known to this process or not (the process keeps
only the secrets' hashes; a revoked or mistyped one is still a secret). Both cases are required so that a
43-character identifier in a message (snake_case, a hex digest) is left alone."""
_secrets: list[str] = []
_tokens: list[str] = []
_PERCENT_ENCODED = re.compile(r"[^\s\"']*%[0-9A-Fa-f]{2}[^\s\"']*")
"""A run of text holding a percent-encoded octet (a path or query string as a log line shows it): a client may
encode any character of a token, so such runs are decoded before they are searched."""


def never_log(tokens: Iterable[str]) -> None:
    """Tokens no log line may show, wherever they appear (a query string, a path, a GraphQL error, a stack
    trace): as sent, percent-encoded or JSON-escaped. Every token configured in this process is added."""
    given = [token for token in tokens if token]
    forms = {form for token in given for form in _written_forms(token)}
    _secrets[:] = sorted(forms | set(_secrets), key=len, reverse=True)  # longest first: no token's tail is left
    _tokens[:] = sorted(set(given) | set(_tokens), key=len, reverse=True)


def _written_forms(token: str) -> set[str]:
    return {token, quote(token, safe=""), quote(token), quote_plus(token), orjson.dumps(token).decode()[1:-1]}


def redact(line: str) -> str:
    """`line` with every credential replaced by [redacted]."""
    line = _SECRET_PARAMETER.sub(rf"\1{REDACTED}", line)
    line = _NAMED_TOKEN_SHAPE.sub(REDACTED, line)
    for secret in _secrets:
        if secret in line:
            line = line.replace(secret, REDACTED)
    if "%" in line:
        line = _PERCENT_ENCODED.sub(_redacted_run, line)
    return line


def without_tokens(text: str) -> str:
    """`text` (a request's path or query as a span shows it) with every configured token, in any of its written
    forms, replaced by [redacted]: the cheap part of `redact`, for attributes built on every request."""
    if len(text) >= _NAMED_SECRET_LENGTH:  # a request's path is mostly shorter: no search at all
        text = _NAMED_TOKEN_SHAPE.sub(REDACTED, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redacted_run(match: re.Match[str]) -> str:
    """A percent-encoded run, decoded and redacted when it holds a token however it was encoded (`%53eCret`)."""
    decoded = unquote(match.group(0))
    redacted = _NAMED_TOKEN_SHAPE.sub(REDACTED, decoded)
    if redacted == decoded and not any(token in decoded for token in _tokens):
        return match.group(0)
    for token in _tokens:
        redacted = redacted.replace(token, REDACTED)
    return redacted


REDACTED_VALUE = "REDACTED"
"""What a query parameter's value shows where it is not shown (a span's url.query, as OpenTelemetry's HTTP
conventions write it; the access log's GraphQL parameters)."""
GRAPHQL_TASK_DATA = frozenset({"query", "variables", "extensions"})
"""A GraphQL GET's parameters that carry task data (a document's literal arguments, its variables, an extension's
payload): the access log shows their names only. `operationName` names code, not data: shown."""


def redacted_query(query: str, names: frozenset[str] | None = None) -> str:
    """A query string with the values of `names` (every value when None) replaced by REDACTED_VALUE, the names
    kept (`query=REDACTED&variables=REDACTED`): a query string may carry a GraphQL document, its variables (task
    data) or a credential."""
    return urlencode(
        [
            (name, REDACTED_VALUE if names is None or name in names else value)
            for name, value in parse_qsl(query, keep_blank_values=True)
        ]
    )


WARNING_INTERVAL_S = 60.0
"""How often at most a warning with a steady cause (every export, every request) is written again."""


class AtMostEvery:
    """When a recurring warning is written: the first time, then at most once per `interval_s` (a cause that
    persists would otherwise write a line per occurrence, burying every other; /metrics counts occurrences)."""

    def __init__(self, interval_s: float = WARNING_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._next: float | None = None

    def due(self) -> bool:
        """Whether the warning is to be written now (and then not again for `interval_s`)."""
        now = time.monotonic()
        if self._next is not None and now < self._next:
            return False
        self._next = now + self._interval_s
        return True


class _RedactingHandler(logging.StreamHandler[TextIO]):
    """Redacts the whole formatted line (message, arguments, stack trace), so no logger can leak a token."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_handler(log_format: str, stream: TextIO = sys.stderr) -> logging.Handler:
    """The gateway's handler: text, or JSON lines with TRACKING_LOG_FORMAT=json, each line with its request and
    trace ids; credentials redacted (`never_log`)."""
    handler = _RedactingHandler(stream)
    handler.addFilter(_RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter(JSON_FIELDS))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(level: str, log_format: str) -> None:
    """One handler on the root logger for every line (uvicorn's included: it is run without a log config of
    its own): `log_handler`'s."""
    handler = log_handler(log_format)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
