"""The gateway's OTLP encoder (gateway/otlp_encoding.py) writes exactly what the OTLP exporter's own encoder
writes, for any span the SDK can hold: both are decoded with opentelemetry-proto and compared, and their bytes
too."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway.otlp_encoding import encode_request

keys = st.text(min_size=0, max_size=12)
scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
values: st.SearchStrategy[Any] = st.one_of(
    scalars,
    st.lists(st.text(max_size=5), max_size=3).map(tuple),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3).map(tuple),
    st.lists(st.booleans(), max_size=3).map(tuple),
    st.lists(st.floats(allow_nan=False), max_size=3).map(tuple),
    st.lists(st.none() | st.text(max_size=3), max_size=3).map(tuple),  # the SDK keeps None in a sequence
)
attributes = st.dictionaries(keys, values, max_size=6)
ids64 = st.integers(min_value=1, max_value=2**64 - 1)
ids128 = st.integers(min_value=1, max_value=2**128 - 1)
trace_states = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9_\-*/]{0,8}", fullmatch=True), st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
    ),
    max_size=3,
    unique_by=lambda pair: pair[0],
).map(TraceState)


@st.composite
def contexts(draw: st.DrawFn, remote: bool | None = None) -> SpanContext:
    return SpanContext(
        draw(ids128),
        draw(ids64),
        is_remote=draw(st.booleans()) if remote is None else remote,
        trace_flags=TraceFlags(draw(st.sampled_from([0, 1]))),
        trace_state=draw(trace_states),
    )


@st.composite
def spans(draw: st.DrawFn, resource: Resource, scopes: list[InstrumentationScope | None]) -> ReadableSpan:
    start = draw(st.integers(min_value=0, max_value=2**63))
    events = draw(
        st.lists(
            st.builds(Event, st.text(max_size=8), attributes, st.integers(min_value=0, max_value=2**63)),
            max_size=2,
        )
    )
    links = draw(st.lists(st.builds(Link, contexts(), attributes), max_size=3))
    status = draw(
        st.sampled_from([Status(StatusCode.UNSET), Status(StatusCode.OK), Status(StatusCode.ERROR, "went wrong")])
    )
    return ReadableSpan(
        name=draw(st.text(max_size=30)),
        context=draw(contexts(remote=False)),
        parent=draw(st.none() | contexts()),
        resource=resource,
        attributes=draw(attributes),
        events=events,
        links=links,
        kind=draw(st.sampled_from(list(SpanKind))),
        status=status,
        start_time=start,
        end_time=start + draw(st.integers(min_value=0, max_value=10**12)),
        instrumentation_scope=draw(st.sampled_from(scopes)),
    )


@st.composite
def batches(draw: st.DrawFn) -> list[ReadableSpan]:
    resource = Resource.create(draw(st.dictionaries(keys, scalars, max_size=3)))
    scopes: list[InstrumentationScope | None] = [
        None,
        InstrumentationScope("tracking-gateway"),
        InstrumentationScope("tracking-gateway"),  # equal, another object (each get_tracer makes one): one group
        InstrumentationScope("tracking-gateway.models", "1.0", "https://opentelemetry.io/schemas/1.30.0"),
    ]
    return draw(st.lists(spans(resource, scopes), max_size=6))


@settings(max_examples=300, deadline=None)
@given(batches())
def test_the_request_is_the_exporters_own(batch):
    ours = encode_request(batch)
    theirs = encode_spans(batch)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializeToString()


def test_attributes_kept_between_spans_stay_apart_by_type():
    """A kept encoding is found by key, value and type: True and 1 are equal in Python, not in OTLP."""
    resource = Resource.create({})
    context = SpanContext(1, 1, is_remote=False)
    first, second = (
        ReadableSpan("s", context, resource=resource, attributes={"a": value}, start_time=1, end_time=2)
        for value in (True, 1)
    )
    decoded = ExportTraceServiceRequest.FromString(encode_request([first, second]))
    encoded = [span.attributes[0].value for span in decoded.resource_spans[0].scope_spans[0].spans]
    assert encoded[0].WhichOneof("value") == "bool_value" and encoded[0].bool_value is True
    assert encoded[1].WhichOneof("value") == "int_value" and encoded[1].int_value == 1
