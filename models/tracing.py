"""Spans of the graph store, on OpenTelemetry's API only (the SDK, when tracing is on, is the gateway's).

Every MongoDB command sent while a sampled span is current becomes a client span (`CommandSpans`), following
OpenTelemetry's database semantic conventions for MongoDB: `db.system.name`, `db.namespace`,
`db.collection.name`, `db.operation.name`, `server.address` and `server.port`, and on failure `error.type` and
`db.response.status_code`. No command text, filter or document goes into a span (no `db.query.text`): it would
carry task data. A command sent with no span current (a change stream's getMore between events, the history
writer's lease renewals) makes no span: it belongs to no request, and would make a trace of its own every
second per stream.

Spans of work that no request starts (a history batch) are root spans of their own traces (`root_span`)."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pymongo.errors
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import Attributes
from pymongo import monitoring

from models.log_context import fresh_context

INSTRUMENTATION = "tracking-gateway.models"
MAX_OPEN_COMMANDS = 10_000
"""Commands awaiting their answer whose spans are kept: a command cancelled mid-flight publishes no event that
ends its span. Its sender ends it where it hears of the cancellation (`end_abandoned_command`); past this many
(a sender that never did) the oldest are ended, marked unfinished, rather than kept forever."""
MAX_COMMAND_KINDS = 1024
"""Kinds of command (database, command, collection, server, in a transaction or not) whose span name and
attributes are kept: a gateway sends a few dozen; the store is emptied if ever full."""
CANCELLED = "cancelled"
"""`error.type` of a command whose wait was cut: by the gateway (its request or subscription cancelled) or by
PyMongo (the operation cancelled on a connection it gave up on)."""
_COLLECTION_KEYS = ("collection",)
"""Commands naming their collection in a field rather than as their own value (getMore)."""


def store_tracer(provider: TracerProvider | None) -> Tracer | None:
    """The store's tracer from `provider`; None (no spans at all, nothing on the request path) without one."""
    return provider.get_tracer(INSTRUMENTATION) if provider is not None else None


def tracing_now() -> bool:
    """Whether a sampled span is current: work on spans is done only then."""
    return trace.get_current_span().is_recording()


def set_current(key: str, value: str | int | float | bool) -> None:
    """Set an attribute on the current span when it is sampled (a store operation's deadline, a queue wait). One
    key at a time: the SDK's `set_attributes` first checks the mapping as a whole, which costs more."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(key, value)


@contextmanager
def root_span(tracer: Tracer | None, name: str, attributes: dict[str, str | int | float | bool]) -> Iterator[None]:
    """A span starting a trace of its own (whatever is current), current meanwhile; nothing without a tracer.
    An error marks it failed with its type only: an error's message may quote stored values."""
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(
        name,
        context=otel_context.Context(),
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as error:
            mark_failed(span, error)
            raise


def mark_failed(span: Span, error: BaseException) -> None:
    """The span failed, saying with what type of error (not its message, which may quote stored values)."""
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(StatusCode.ERROR)


_IN_FLIGHT: contextvars.ContextVar[tuple[dict[tuple[object, int], Span], tuple[object, int]] | None] = (
    contextvars.ContextVar("tracking_command_in_flight", default=None)
)
"""The last command a task sent under a sampled span (the open spans it is kept among, and its key). A task
awaits one command at a time: where it is not awaiting one, that command's span still open means the command
was abandoned. Set by the listener, which PyMongo calls in the sending task's context."""


def end_abandoned_command() -> None:
    """End, marked `cancelled`, the span of the command this task was awaiting when its wait was cut (cancelled,
    or out of time): PyMongo publishes no event for it. Nothing when that command answered."""
    in_flight = _IN_FLIGHT.get()
    if in_flight is None:
        return
    spans, key = in_flight
    span = spans.pop(key, None)
    if span is not None:
        span.set_attribute("error.type", CANCELLED)
        span.set_status(StatusCode.ERROR)
        span.end()


class CommandSpans(monitoring.CommandListener):
    """A client span per MongoDB command sent under a sampled span, from PyMongo's command monitoring (which
    the async client publishes in the task that sends the command, so the request's span is current)."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._open: dict[tuple[object, int], Span] = {}
        self._kinds: dict[tuple[str, str, str | None, tuple[str, int | None], bool], tuple[str, Attributes]] = {}
        """Each kind of command's span name and attributes, made once: a tracer copies the attributes it is given."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not tracing_now():
            return
        kind = (
            event.database_name,
            event.command_name,
            _collection_of(event),
            event.connection_id,
            _in_transaction(event),
        )
        named = self._kinds.get(kind)
        if named is None:
            if len(self._kinds) >= MAX_COMMAND_KINDS:
                self._kinds.clear()
            named = self._kinds[kind] = _name_and_attributes(*kind)
        span = self._tracer.start_span(named[0], kind=SpanKind.CLIENT, attributes=named[1])
        key = (event.connection_id, event.request_id)
        self._open[key] = span
        _IN_FLIGHT.set((self._open, key))
        if len(self._open) > MAX_OPEN_COMMANDS:
            oldest = self._open.pop(next(iter(self._open)))
            oldest.set_attribute("error.type", "unfinished")
            oldest.set_status(StatusCode.ERROR)
            oldest.end()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        span = self._open.pop((event.connection_id, event.request_id), None)
        if span is None:
            return
        failure = event.failure if isinstance(event.failure, Mapping) else {}
        code = failure.get("code")
        span.set_attribute("error.type", _error_type(failure))
        if code is not None:
            span.set_attribute("db.response.status_code", str(code))
        span.set_status(StatusCode.ERROR)
        span.end()


def _error_type(failure: Mapping[str, object]) -> str:
    """A failed command's `error.type`: MongoDB's code name, else the driver's error (`errtype`, its class name)
    as a stable public name, else the code, else `failed`."""
    code_name, driver_error, code = failure.get("codeName"), failure.get("errtype"), failure.get("code")
    if code_name:
        return str(code_name)
    if isinstance(driver_error, str) and driver_error:
        return _public_driver_error(driver_error)
    return str(code) if code is not None else "failed"


def _public_driver_error(name: str) -> str:
    """PyMongo publishes a failure under its error's class name, private ones included: the operation it
    cancelled (`_OperationCancelled`, a MongoDB that hangs) is CANCELLED, as a command the gateway cut; another
    private class is named by its nearest public base class in pymongo.errors."""
    if name == "_OperationCancelled":
        return CANCELLED
    if not name.startswith("_"):
        return name
    error = getattr(pymongo.errors, name, None)
    if not isinstance(error, type):
        return "failed"
    return next(base.__name__ for base in error.__mro__ if not base.__name__.startswith("_"))


def _name_and_attributes(
    database: str, name: str, collection: str | None, server: tuple[str, int | None], transaction: bool
) -> tuple[str, Attributes]:
    """A command's span name (`find tasks`) and attributes, by the MongoDB conventions."""
    address, port = server
    attributes: dict[str, str | int | bool] = {
        "db.system.name": "mongodb",
        "db.namespace": database,
        "db.operation.name": name,
        "server.address": str(address),
    }
    if port is not None:  # None: a Unix socket
        attributes["server.port"] = port
    if collection is not None:
        attributes["db.collection.name"] = collection
    if transaction:
        attributes["tracking.mongodb.transaction"] = True
    return f"{name} {collection or database}", attributes


def _in_transaction(event: monitoring.CommandStartedEvent) -> bool:
    """Whether the command is part of a transaction: every command of one carries `autocommit: false` (the
    drivers' transactions specification). Not `txnNumber`: PyMongo numbers every retryable write with it too."""
    return event.command.get("autocommit") is False


def _collection_of(event: monitoring.CommandStartedEvent) -> str | None:
    """The collection a command works on: its own value (`{"find": "tasks"}`) or, for getMore, a field."""
    value = event.command.get(event.command_name)
    if isinstance(value, str):
        return value
    for key in _COLLECTION_KEYS:
        named = event.command.get(key)
        if isinstance(named, str):
            return named
    return None


class StreamSpan:
    """The span of one opening of a change stream, current until the stream first answers (its first event,
    or its first empty poll): a subscription's start (within the subscription's trace) or the shared stream's
    resume after MongoDB went away (a trace of its own, linked to none: it serves every subscription, and may
    come hours after any of them started)."""

    def __init__(self, tracer: Tracer, name: str, attributes: dict[str, str | int | float | bool], resuming: bool):
        parent = otel_context.Context() if resuming else None
        self._span: Span | None = tracer.start_span(name, context=parent, attributes=attributes)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def end(self, error: BaseException | None = None) -> None:
        """End it (once) and make current again what was before; `error` marks it failed."""
        span, self._span = self._span, None
        if span is None:
            return
        end_abandoned_command()  # the stream's opening command, if it was cut before it answered
        otel_context.detach(self._token)
        if error is not None:
            mark_failed(span, error)
        span.end()


def context_keeping_trace() -> contextvars.Context:
    """A fresh context, none of the caller's context variables (its deadlines among them), but for its trace and
    request id: work that outlives the request (a transaction's commit or abort) still shows in the request's
    trace, and its log lines name the request."""
    current = otel_context.get_current()
    fresh = fresh_context()
    fresh.run(otel_context.attach, current)
    return fresh
