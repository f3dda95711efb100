"""models.tracing.CommandSpans: a command cancelled mid-flight publishes no event that ends its span; past
MAX_OPEN_COMMANDS the oldest such span is ended marked unfinished, not kept forever nor shown as a success."""

from __future__ import annotations

from datetime import timedelta

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import StatusCode
from pymongo.errors import NetworkTimeout, _OperationCancelled
from pymongo.message import _convert_exception
from pymongo.monitoring import CommandFailedEvent, CommandStartedEvent, CommandSucceededEvent

from gateway.recorded_spans import RecordingTracerProvider
from models import tracing


class Collected(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def started(request_id: int) -> CommandStartedEvent:
    return CommandStartedEvent({"find": "tasks", "filter": {}}, "tracking", request_id, ("127.0.0.1", 27017), 1)


def test_past_the_open_commands_bound_the_oldest_span_ends_marked_unfinished(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "MAX_OPEN_COMMANDS", 2)
    collected = Collected()
    tracer = RecordingTracerProvider(ALWAYS_ON, Resource.create({}), collected).get_tracer("test")
    listener = tracing.CommandSpans(tracer)
    with tracer.start_as_current_span("request"):
        for request_id in (1, 2, 3):  # the first never answered (its sender cancelled)
            listener.started(started(request_id))
        assert [span.name for span in collected.spans] == ["find tasks"]
        (unfinished,) = collected.spans
        assert unfinished.attributes is not None and unfinished.attributes["error.type"] == "unfinished"
        assert unfinished.status.status_code is StatusCode.ERROR
        took = timedelta(milliseconds=1)
        reply = CommandSucceededEvent(took, {"ok": 1}, "find", 2, ("127.0.0.1", 27017), 1, database_name="tracking")
        listener.succeeded(reply)
    answered = collected.spans[1]
    assert answered.status.status_code is StatusCode.UNSET and "error.type" not in (answered.attributes or {})


def test_a_command_pymongo_reports_cancelled_fails_with_a_stable_error_type() -> None:
    """PyMongo publishes the failure of a command whose connection it cancelled (a MongoDB that hangs, its pool
    cleared) under its private class's name: the span says `cancelled`, as for a command the gateway cut."""
    collected = Collected()
    tracer = RecordingTracerProvider(ALWAYS_ON, Resource.create({}), collected).get_tracer("test")
    listener = tracing.CommandSpans(tracer)
    failure = _convert_exception(_OperationCancelled("operation cancelled"))
    with tracer.start_as_current_span("request"):
        listener.started(started(1))
        took = timedelta(seconds=5)
        listener.failed(CommandFailedEvent(took, failure, "find", 1, ("127.0.0.1", 27017), 1, database_name="tracking"))
    (command,) = [span for span in collected.spans if span.name == "find tasks"]
    assert command.attributes is not None and command.attributes["error.type"] == "cancelled"
    assert command.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        ({"ok": 0, "code": 11000, "codeName": "DuplicateKey"}, "DuplicateKey"),
        (_convert_exception(NetworkTimeout("timed out")), "NetworkTimeout"),
        ({"ok": 0}, "failed"),
    ],
)
def test_a_failed_command_s_error_type_is_mongodb_s_code_name_or_the_driver_s_public_error(
    failure: dict[str, object], error_type: str
) -> None:
    collected = Collected()
    tracer = RecordingTracerProvider(ALWAYS_ON, Resource.create({}), collected).get_tracer("test")
    listener = tracing.CommandSpans(tracer)
    with tracer.start_as_current_span("request"):
        listener.started(started(1))
        took = timedelta(milliseconds=1)
        listener.failed(CommandFailedEvent(took, failure, "find", 1, ("127.0.0.1", 27017), 1, database_name="tracking"))
    (command,) = [span for span in collected.spans if span.name == "find tasks"]
    assert command.attributes is not None and command.attributes["error.type"] == error_type
