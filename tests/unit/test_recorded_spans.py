"""gateway.recorded_spans: the spans its tracers make reach the processor as the SDK's own tracers' do (same
sampling, parenting, attributes after cleaning, status rules, limits, the same OTLP bytes), and an unsampled or
ended span records nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway.otlp_encoding import encode_request
from gateway.recorded_spans import RecordedSpan, RecordingTracerProvider, children_follow_sampled_parent
from gateway.settings import Settings
from gateway.tracing import sampler as configured_sampler

RESOURCE = Resource.create({"service.name": "recorded-spans-test"})


class Collected(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def recording(sampler: Sampler = ALWAYS_ON) -> tuple[trace.Tracer, Collected]:
    collected = Collected()
    return RecordingTracerProvider(sampler, RESOURCE, collected).get_tracer("test.scope", "1.0"), collected


def sdk(sampler: Sampler = ALWAYS_ON) -> tuple[trace.Tracer, Collected]:
    collected = Collected()
    provider = TracerProvider(sampler=sampler, resource=RESOURCE)
    provider.add_span_processor(collected)
    return provider.get_tracer("test.scope", "1.0"), collected


def remote_parent(sampled: bool) -> tuple[SpanContext, otel_context.Context]:
    parent = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
    )
    return parent, trace.set_span_in_context(NonRecordingSpan(parent))


def test_a_span_reaches_the_processor_once_at_its_end_with_its_parent_scope_and_resource():
    tracer, collected = recording()
    parent, context = remote_parent(sampled=True)
    span = tracer.start_span("GET", context=context, kind=SpanKind.SERVER, attributes={"url.path": "/t/1"})
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        child = tracer.start_span("find tasks", kind=SpanKind.CLIENT)
        child.end()
    finally:
        otel_context.detach(token)
    assert [s.name for s in collected.spans] == ["find tasks"], "a span is handed over at its end, not before"
    span.update_name("GET /t/{id}")
    span.set_attribute("http.response.status_code", 200)
    span.end()
    span.end()
    span.set_attribute("late", True)
    child_span, server = collected.spans
    assert [s.name for s in collected.spans] == ["find tasks", "GET /t/{id}"], "ended once"
    assert server.context.trace_id == parent.trace_id and server.parent == parent
    assert child_span.parent == server.context and child_span.context.trace_id == parent.trace_id
    assert dict(server.attributes or {}) == {"url.path": "/t/1", "http.response.status_code": 200}, (
        "nothing after its end"
    )
    assert server.kind is SpanKind.SERVER and child_span.kind is SpanKind.CLIENT
    assert server.resource is RESOURCE
    assert server.instrumentation_scope is not None and server.instrumentation_scope.name == "test.scope"
    assert server.start_time is not None and server.end_time is not None and server.start_time <= server.end_time
    assert not span.is_recording()


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ParentBased(ALWAYS_ON)])
def test_an_unsampled_span_is_the_apis_non_recording_span_and_is_never_exported(sampler):
    """Dropped by the sampler (ALWAYS_OFF), or by a caller that did not sample (parent-based)."""
    tracer, collected = recording(sampler)
    parent, context = remote_parent(sampled=False)
    span = tracer.start_span("GET", context=context)
    assert isinstance(span, NonRecordingSpan) and not span.is_recording()
    assert span.get_span_context().trace_id == parent.trace_id, "the caller's trace goes on (log lines show it)"
    assert not span.get_span_context().trace_flags.sampled
    span.end()
    assert collected.spans == []


def test_a_span_without_parent_starts_a_trace_and_a_sampled_caller_is_followed():
    tracer, _ = recording(ParentBased(ALWAYS_OFF))
    parent, context = remote_parent(sampled=True)
    followed = tracer.start_span("GET", context=context)
    assert followed.is_recording() and followed.get_span_context().trace_id == parent.trace_id
    root = recording()[0].start_span("batch", context=otel_context.Context())
    assert root.get_span_context().is_valid and root.get_span_context().trace_id != parent.trace_id


def test_status_follows_the_sdks_rules():
    tracer, collected = recording()
    span = tracer.start_span("a")
    span.set_status(StatusCode.ERROR, "TimeoutError")
    span.set_status(StatusCode.UNSET)
    span.end()
    ok = tracer.start_span("b")
    ok.set_status(Status(StatusCode.OK))
    ok.set_status(StatusCode.ERROR)
    ok.end()
    assert [(s.status.status_code, s.status.description) for s in collected.spans] == [
        (StatusCode.ERROR, "TimeoutError"),
        (StatusCode.OK, None),
    ], "UNSET never overrides, OK is final"


def test_an_exception_is_recorded_by_its_type_only():
    """A message may quote stored values: the event says the type, and a span used as a context manager is
    failed by the type too."""
    tracer, collected = recording()
    with pytest.raises(ValueError, match="payroll"), tracer.start_span("a"):
        raise ValueError("payroll-run-7f3a")
    (span,) = collected.spans
    (event,) = span.events
    assert event.name == "exception" and dict(event.attributes or {}) == {
        "exception.type": "ValueError",
        "exception.escaped": True,
    }
    assert span.status.status_code is StatusCode.ERROR and "payroll" not in str(span.status.description)


def test_start_as_current_span_makes_it_current_and_ends_it():
    tracer, collected = recording()
    with tracer.start_as_current_span("batch", context=otel_context.Context(), record_exception=False) as span:
        assert trace.get_current_span() is span
        tracer.start_span("insert task_history").end()
    assert [s.name for s in collected.spans] == ["insert task_history", "batch"]
    assert collected.spans[0].parent == collected.spans[1].context


def test_links_and_events_are_kept():
    tracer, collected = recording()
    other, _ = remote_parent(sampled=True)
    span = tracer.start_span("coalesced read", links=[trace.Link(other, {"tracking.reads.ids": 2})])
    span.add_event("retry", {"attempt": 2})
    span.end()
    (recorded,) = collected.spans
    assert [link.context for link in recorded.links] == [other]
    assert [(e.name, dict(e.attributes or {})) for e in recorded.events] == [("retry", {"attempt": 2})]


def test_the_attribute_limit_drops_new_keys_and_counts_them(monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    tracer, collected = recording()
    span = tracer.start_span("a", attributes={"one": "abcdef", "two": 2})
    span.set_attribute("three", 3)
    span.set_attribute("one", "x")
    span.end()
    (recorded,) = collected.spans
    assert dict(recorded.attributes or {}) == {"one": "x", "two": 2} and recorded.dropped_attributes == 1
    capped = tracer.start_span("b", attributes={"long": "abcdef"})
    capped.end()
    assert dict(collected.spans[1].attributes or {}) == {"long": "abc"}


def test_events_past_the_limit_drop_the_oldest_and_are_counted_as_the_sdk_does(monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "2")
    requests = []
    for make in (recording, sdk):
        tracer, collected = make()
        span = tracer.start_span("a")
        for attempt in range(5):
            span.add_event("retry", {"attempt": attempt})
        span.end(end_time=2_000)
        (ended,) = collected.spans
        assert [dict(event.attributes or {}) for event in ended.events] == [{"attempt": 3}, {"attempt": 4}]
        assert ended.dropped_events == 3
        requests.append(ExportTraceServiceRequest.FromString(encode_request([ended])))
    recorded, sdks = (request.resource_spans[0].scope_spans[0].spans[0] for request in requests)
    assert recorded.dropped_events_count == sdks.dropped_events_count == 3


def test_link_attributes_are_bounded_as_the_sdk_bounds_them(monkeypatch):
    monkeypatch.setenv("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    requests = []
    for make in (recording, sdk):
        tracer, collected = make()
        other, _ = remote_parent(sampled=True)
        span = tracer.start_span("a", links=[trace.Link(other, {"one": "abcdef", "two": 2})])
        span.add_link(other, {"three": "ghijkl", "four": 4, "five": 5})
        span.end(end_time=2_000)
        (ended,) = collected.spans
        # Values cut to the length limit; past the count limit the oldest key goes (BoundedAttributes, as in the SDK).
        assert [dict(link.attributes or {}) for link in ended.links] == [
            {"one": "abc", "two": 2},
            {"four": 4, "five": 5},
        ]
        requests.append(ExportTraceServiceRequest.FromString(encode_request([ended])))
    recorded, sdks = (request.resource_spans[0].scope_spans[0].spans[0] for request in requests)
    assert [link.dropped_attributes_count for link in recorded.links] == [0, 1]
    assert recorded.links == sdks.links


ATTRIBUTE_VALUES = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=3), max_size=3),
    st.lists(st.integers(min_value=0, max_value=9), max_size=3),
    st.lists(st.one_of(st.integers(min_value=0, max_value=9), st.text(max_size=2)), max_size=3),  # mixed: dropped
    st.none(),
    st.binary(max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@given(attributes=st.dictionaries(st.text(min_size=1, max_size=8), ATTRIBUTE_VALUES, max_size=6))
def test_attributes_are_cleaned_as_the_sdk_cleans_them_and_encode_to_the_same_bytes(attributes: dict[str, Any]):
    """Whatever values a caller gives, at start and set after, the recorded span keeps what the SDK's own span
    keeps, and the OTLP request for both is the same but for the ids and times."""
    spans = []
    for make in (recording, sdk):
        tracer, collected = make()
        span = tracer.start_span("a", context=remote_parent(sampled=True)[1], attributes=attributes)
        for key, value in attributes.items():
            span.set_attribute(f"after.{key}", value)
        span.end(end_time=2_000)
        (readable,) = collected.spans
        spans.append(readable)
    recorded, sdk_span = spans
    assert isinstance(recorded, RecordedSpan)
    assert dict(recorded.attributes or {}) == dict(sdk_span.attributes or {})
    for readable in spans:  # the ids and times are each span's own: made equal, the bytes must be
        readable._context = SpanContext(1, 2, False, TraceFlags(TraceFlags.SAMPLED))
        readable._start_time = 1_000
    assert encode_request([recorded]) == encode_request([sdk_span])


def test_the_provider_has_one_processor_and_shuts_it_down():
    """A second processor would never see its on_start (the tracers hand spans to the first only): refused."""
    collected = Collected()
    provider = RecordingTracerProvider(ALWAYS_ON, RESOURCE, collected)
    with pytest.raises(TypeError, match="one processor"):
        provider.add_span_processor(Collected())
    shut: list[bool] = []
    collected.shutdown = lambda: shut.append(True)  # type: ignore[method-assign]
    provider.shutdown()
    assert shut == [True]


SAMPLER_NAMES = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


def chain(tracer: trace.Tracer, context: otel_context.Context, depth: int) -> list[trace.Span]:
    """A span under the caller's `context`, a child under it, and so on (`depth` spans), each current in turn."""
    made: list[trace.Span] = []
    tokens = []
    try:
        for level in range(depth):
            span = tracer.start_span(f"level {level}", context=context if level == 0 else None)
            made.append(span)
            tokens.append(otel_context.attach(trace.set_span_in_context(span)))
    finally:
        for token in reversed(tokens):
            otel_context.detach(token)
    return made


class FixedIds(IdGenerator):
    """The same trace id for every trace, and span ids counting up: two providers make the same ids."""

    def __init__(self, trace_id: int, random: bool) -> None:
        self.trace_id = trace_id
        self.random = random
        self.span_ids = iter(range(1, 2**64))

    def generate_span_id(self) -> int:
        return next(self.span_ids)

    def generate_trace_id(self) -> int:
        return self.trace_id

    def is_trace_id_random(self) -> bool:
        return self.random


@settings(deadline=None)  # Settings are read per example: slow on a loaded machine, not wrong
@given(
    name=st.sampled_from(SAMPLER_NAMES),
    ratio=st.floats(min_value=0, max_value=1),
    caller=st.sampled_from([None, "sampled", "unsampled"]),
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    random_ids=st.booleans(),
    trace_state=st.sampled_from([None, "vendor=a1", "one=1,two=2"]),
    depth=st.integers(min_value=1, max_value=4),
)
def test_every_sampler_the_settings_name_samples_spans_and_their_children_as_the_sdk_does(
    name: str,
    ratio: float,
    caller: str | None,
    trace_id: int,
    random_ids: bool,
    trace_state: str | None,
    depth: int,
):
    """A child of a span the same provider sampled, and with always_on any span, is sampled without asking the
    sampler when the sampler is one OTEL_TRACES_SAMPLER names (children_follow_sampled_parent): the decisions,
    ids, flags and trace states are the SDK's own tracer's, span after span, with a caller or without."""
    chosen = configured_sampler(Settings(otel_traces_sampler=name, otel_traces_sampler_arg=ratio))
    assert children_follow_sampled_parent(chosen)
    context = otel_context.Context()
    if caller is not None:
        flags = TraceFlags(TraceFlags.SAMPLED if caller == "sampled" else TraceFlags.DEFAULT)
        state = TraceState.from_header([trace_state]) if trace_state else None
        remote = SpanContext(trace_id, 0xB7AD6B7169203331, is_remote=True, trace_flags=flags, trace_state=state)
        context = trace.set_span_in_context(NonRecordingSpan(remote))
    ours = RecordingTracerProvider(chosen, RESOURCE, Collected(), FixedIds(trace_id, random_ids))
    theirs = TracerProvider(sampler=chosen, resource=RESOURCE, id_generator=FixedIds(trace_id, random_ids))

    def made(provider: TracerProvider) -> list[tuple[bool, SpanContext, SpanContext | None]]:
        return [
            (span.is_recording(), span.get_span_context(), getattr(span, "parent", None))
            for span in chain(provider.get_tracer("test.scope"), context, depth)
        ]

    assert made(ours) == made(theirs)


def test_a_sampler_that_may_refuse_a_sampled_parents_child_is_asked_for_each_span():
    """Not one OTEL_TRACES_SAMPLER names: its decision for a child is not assumed."""
    refusing = ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF)
    assert not children_follow_sampled_parent(refusing)
    root, child = chain(recording(refusing)[0], otel_context.Context(), 2)
    assert root.is_recording() and not child.is_recording()
    assert child.get_span_context().trace_id == root.get_span_context().trace_id


def test_a_child_of_another_providers_sampled_span_is_decided_by_its_own_sampler():
    """Each app has its own provider: a span one app sampled is current when another app, whose sampler
    samples nothing, starts a span. The SDK's tracer asks its own sampler: so does this one."""
    sampled_elsewhere = chain(recording(ALWAYS_ON)[0], otel_context.Context(), 1)[0]
    token = otel_context.attach(trace.set_span_in_context(sampled_elsewhere))
    try:
        mine = recording(ALWAYS_OFF)[0].start_span("mine")
        theirs = sdk(ALWAYS_OFF)[0].start_span("theirs")
    finally:
        otel_context.detach(token)
    assert sampled_elsewhere.is_recording() and not theirs.is_recording()
    assert not mine.is_recording()
    assert mine.get_span_context().trace_id == sampled_elsewhere.get_span_context().trace_id
