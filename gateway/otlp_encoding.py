"""Spans as OTLP's ExportTraceServiceRequest, written straight into protobuf's wire format.

The OTLP exporter's own encoder (opentelemetry-exporter-otlp-proto-common) builds a protobuf message object for
every span, attribute and value, then serialises them: at full sampling that cost the gateway more CPU than a
fast-path GET itself (docs/decisions/tracing.md, "Cost"). This writes the same bytes directly, field by field,
with what repeats encoded once: the resource and the instrumentation scope of a batch, the attributes, the span
names with their kinds; each span is read from the `ReadableSpan`'s fields and joined once into the request.
The message is exactly the exporter's (tests/unit/test_otlp_encoding.py decodes both with opentelemetry-proto and
compares them), down to its choices: span `flags` say only whether the parent is remote, a link's trace state
is not sent, a span's status is always present.

Wire format: https://protobuf.dev/programming-guides/encoding/ (proto3: a scalar at its default is not written;
a sub-message that is set is, even empty). Field numbers: opentelemetry-proto's trace.proto, common.proto and
resource.proto (v1)."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode
from opentelemetry.util.types import Attributes

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200
_KINDS = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_PAIRS_KEPT = 4096
"""Scalar attributes (key and value) whose encoding is kept, under each tag."""


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _len_field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _string_field(tag: bytes, value: str | None) -> bytes:
    """A string (or bytes) field; nothing when empty (proto3's default)."""
    if not value:
        return b""
    return _len_field(tag, value.encode("utf-8"))


def _uint_field(tag: bytes, value: int) -> bytes:
    return tag + _varint(value) if value else b""


def _id_prefixes(trace_id_prefix: bytes, span_id_prefix: bytes) -> int:
    """The two prefixes (tag and length, two bytes each) of `_ids` at their places in its 28 bytes: the trace
    id's prefix, the 16 bytes of the trace id, the span id's prefix, the 8 bytes of the span id."""
    return int.from_bytes(trace_id_prefix, "big") << 208 | int.from_bytes(span_id_prefix, "big") << 64


# Tags, by message (field number, wire type).
_REQUEST_RESOURCE_SPANS = _tag(1, _LEN)
_RESOURCE_SPANS_RESOURCE, _RESOURCE_SPANS_SCOPE_SPANS, _RESOURCE_SPANS_SCHEMA = (
    _tag(1, _LEN),
    _tag(2, _LEN),
    _tag(3, _LEN),
)
_RESOURCE_ATTRIBUTES = _tag(1, _LEN)
_SCOPE_SPANS_SCOPE, _SCOPE_SPANS_SPANS, _SCOPE_SPANS_SCHEMA = _tag(1, _LEN), _tag(2, _LEN), _tag(3, _LEN)
_SCOPE_NAME, _SCOPE_VERSION, _SCOPE_ATTRIBUTES = _tag(1, _LEN), _tag(2, _LEN), _tag(3, _LEN)
_SPAN_TRACE_ID, _SPAN_SPAN_ID, _SPAN_TRACE_STATE, _SPAN_PARENT, _SPAN_NAME = (_tag(n, _LEN) for n in range(1, 6))
_SPAN_KIND, _SPAN_START, _SPAN_END, _SPAN_ATTRIBUTES = _tag(6, _VARINT), _tag(7, _I64), _tag(8, _I64), _tag(9, _LEN)
_SPAN_DROPPED_ATTRIBUTES, _SPAN_EVENTS, _SPAN_DROPPED_EVENTS = _tag(10, _VARINT), _tag(11, _LEN), _tag(12, _VARINT)
_SPAN_LINKS, _SPAN_DROPPED_LINKS, _SPAN_STATUS, _SPAN_FLAGS = (
    _tag(13, _LEN),
    _tag(14, _VARINT),
    _tag(15, _LEN),
    _tag(16, _I32),
)
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTES, _EVENT_DROPPED = (
    _tag(1, _I64),
    _tag(2, _LEN),
    _tag(3, _LEN),
    _tag(4, _VARINT),
)
_LINK_TRACE_ID, _LINK_SPAN_ID, _LINK_ATTRIBUTES = _tag(1, _LEN), _tag(2, _LEN), _tag(4, _LEN)
_LINK_DROPPED, _LINK_FLAGS = _tag(5, _VARINT), _tag(6, _I32)
_STATUS_MESSAGE, _STATUS_CODE = _tag(2, _LEN), _tag(3, _VARINT)
_KEY_VALUE_KEY, _KEY_VALUE_VALUE = _tag(1, _LEN), _tag(2, _LEN)
_ANY_STRING, _ANY_BOOL, _ANY_INT, _ANY_DOUBLE = _tag(1, _LEN), _tag(2, _VARINT), _tag(3, _VARINT), _tag(4, _I64)
_ANY_ARRAY, _ANY_KVLIST, _ANY_BYTES = _tag(5, _LEN), _tag(6, _LEN), _tag(7, _LEN)
_LIST_VALUES = _tag(1, _LEN)
_TRACE_ID_PREFIX = _SPAN_TRACE_ID + b"\x10"
_SPAN_ID_PREFIX = _SPAN_SPAN_ID + b"\x08"
_PARENT_PREFIX = _SPAN_PARENT + b"\x08"
_KIND_FIELDS = {kind: _SPAN_KIND + _varint(number) for kind, number in _KINDS.items()}
_EMPTY_STATUS = _SPAN_STATUS + b"\x00"
_LOCAL_PARENT = _FIXED32(_FLAGS_HAS_IS_REMOTE)
_REMOTE_PARENT = _FIXED32(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)
_LINK_TRACE_ID_PREFIX = _LINK_TRACE_ID + b"\x10"
_LINK_SPAN_ID_PREFIX = _LINK_SPAN_ID + b"\x08"
_LINK_LOCAL_FLAGS = _LINK_FLAGS + _LOCAL_PARENT
_LINK_REMOTE_FLAGS = _LINK_FLAGS + _REMOTE_PARENT
_SCALARS = frozenset({str, bool, int, float})
_SPAN_IDS_PREFIXES = _id_prefixes(_TRACE_ID_PREFIX, _SPAN_ID_PREFIX)
_LINK_IDS_PREFIXES = _id_prefixes(_LINK_TRACE_ID_PREFIX, _LINK_SPAN_ID_PREFIX)
_PARENT_PREFIX_BITS = int.from_bytes(_PARENT_PREFIX, "big") << 64
_TIMES = struct.Struct("<BQBQ").pack
"""A span's start and end fields: each a one-byte tag and its fixed64."""
_SPAN_START_TAG, _SPAN_END_TAG = _SPAN_START[0], _SPAN_END[0]
_pairs: dict[bytes, dict[tuple[str, type, object], bytes]] = {}
"""Encoded attributes, by the tag they are written under (a span's, an event's, a link's, a scope's or resource's)."""
_names: dict[tuple[str, SpanKind], bytes] = {}


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The ExportTraceServiceRequest carrying `spans`, grouped by resource, then by instrumentation scope."""
    # A Resource hashes by serialising its attributes to JSON: resources go by identity (a provider's spans
    # share one). Scopes go by equality, as the exporter groups them (each `get_tracer` makes its own), each
    # scope object looked up once per batch: a scope hashes its fields anew every time.
    resources: dict[int, tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]] = {}
    scope_parts: dict[tuple[int, int], list[bytes]] = {}
    for span in spans:
        resource, scope = span._resource, span._instrumentation_scope or None
        parts = scope_parts.get((id(resource), id(scope)))
        if parts is None:
            grouped = resources.get(id(resource))
            if grouped is None:
                grouped = resources[id(resource)] = (resource, {})
            parts = scope_parts[(id(resource), id(scope))] = grouped[1].setdefault(scope, [])
        parts.extend(_span(span))
    out = bytearray()
    for resource, scopes in resources.values():
        body = bytearray(
            _len_field(_RESOURCE_SPANS_RESOURCE, _attributes_field(_RESOURCE_ATTRIBUTES, resource.attributes))
        )
        for scope, parts in scopes.items():
            scope_spans = bytearray(_len_field(_SCOPE_SPANS_SCOPE, _scope(scope)))
            scope_spans += b"".join(parts)
            scope_spans += _string_field(_SCOPE_SPANS_SCHEMA, scope.schema_url if scope else None)
            body += _len_field(_RESOURCE_SPANS_SCOPE_SPANS, bytes(scope_spans))
        body += _string_field(_RESOURCE_SPANS_SCHEMA, resource.schema_url)
        out += _len_field(_REQUEST_RESOURCE_SPANS, bytes(body))
    return bytes(out)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    return (
        _string_field(_SCOPE_NAME, scope.name)
        + _string_field(_SCOPE_VERSION, scope.version)
        + _attributes_field(_SCOPE_ATTRIBUTES, scope.attributes)
    )


def _span(span: ReadableSpan) -> tuple[bytes, bytes, bytes]:
    """The span as a ScopeSpans `spans` field: its tag, length and message. It reads the `ReadableSpan`'s own
    fields (what its properties return, without the copies they make: a tuple of the events, another of the
    links, a read-only view of the attributes), which every span of the pinned SDK has."""
    context = span._context
    assert context is not None  # an SDK span always has one
    parent = span._parent
    parts = [_ids(_SPAN_IDS_PREFIXES, context)]
    if context.trace_state:
        parts.append(_string_field(_SPAN_TRACE_STATE, _trace_state(context)))
    if parent is not None:
        parts.append((_PARENT_PREFIX_BITS | parent.span_id).to_bytes(10, "big"))
    parts.append(_name_and_kind(span._name, span._kind))
    start, end = span._start_time, span._end_time
    if start and end:
        parts.append(_TIMES(_SPAN_START_TAG, start, _SPAN_END_TAG, end))
    else:
        if start:
            parts += (_SPAN_START, _FIXED64(start))
        if end:
            parts += (_SPAN_END, _FIXED64(end))
    _add_attributes(parts, _SPAN_ATTRIBUTES, span._attributes)
    if dropped := span.dropped_attributes:
        parts.append(_uint_field(_SPAN_DROPPED_ATTRIBUTES, dropped))
    for event in span._events:
        parts.append(_len_field(_SPAN_EVENTS, _event(event)))
    if dropped := span.dropped_events:
        parts.append(_uint_field(_SPAN_DROPPED_EVENTS, dropped))
    for link in span._links:
        parts.append(_len_field(_SPAN_LINKS, _link(link)))
    if dropped := span.dropped_links:
        parts.append(_uint_field(_SPAN_DROPPED_LINKS, dropped))
    status = span._status
    if status.status_code is StatusCode.UNSET and not status.description:
        parts.append(_EMPTY_STATUS)
    else:
        status_bytes = _string_field(_STATUS_MESSAGE, status.description) + _uint_field(
            _STATUS_CODE, status.status_code.value
        )
        parts.append(_len_field(_SPAN_STATUS, status_bytes))
    parts += (_SPAN_FLAGS, _REMOTE_PARENT if parent is not None and parent.is_remote else _LOCAL_PARENT)
    message = b"".join(parts)
    return _SCOPE_SPANS_SPANS, _varint(len(message)), message


def _name_and_kind(name: str, kind: SpanKind) -> bytes:
    """A span's name and kind fields, kept: a gateway's span names are few (a route, a command and its
    collection, an operation), emptied like the attributes' when full."""
    encoded = _names.get((name, kind))
    if encoded is None:
        encoded = _string_field(_SPAN_NAME, name) + _KIND_FIELDS[kind]
        if len(_names) >= _PAIRS_KEPT:
            _names.clear()
        _names[(name, kind)] = encoded
    return encoded


def _trace_state(context: SpanContext) -> str:
    return ",".join(f"{key}={value}" for key, value in context.trace_state.items())


def _event(event: Event) -> bytes:
    return (
        (_EVENT_TIME + _FIXED64(event.timestamp) if event.timestamp else b"")
        + _string_field(_EVENT_NAME, event.name)
        + _attributes_field(_EVENT_ATTRIBUTES, event.attributes)
        + _uint_field(_EVENT_DROPPED, event.dropped_attributes)
    )


def _ids(prefixes: int, context: SpanContext) -> bytes:
    """A span's or a link's trace and span ids, each after its field's tag and length: `prefixes` holds both
    (`_id_prefixes`), so the 28 bytes are one integer's (no intermediate bytes per field)."""
    return (prefixes | context.trace_id << 80 | context.span_id).to_bytes(28, "big")


def _link(link: Link) -> bytes:
    """A link: a coalesced read carries one per caller beyond the first, so under load about one per GET."""
    parts = [_ids(_LINK_IDS_PREFIXES, link.context)]
    attributes = link.attributes
    if attributes:  # the gateway's links have none: their dropped count is not looked up (an abstract-class check)
        _add_attributes(parts, _LINK_ATTRIBUTES, attributes)
        if dropped := link.dropped_attributes:
            parts.append(_uint_field(_LINK_DROPPED, dropped))
    parts.append(_LINK_REMOTE_FLAGS if link.context.is_remote else _LINK_LOCAL_FLAGS)
    return b"".join(parts)


def _attributes_field(tag: bytes, attributes: Attributes) -> bytes:
    """Each attribute as a repeated KeyValue field `tag`."""
    parts: list[bytes] = []
    _add_attributes(parts, tag, attributes)
    return b"".join(parts)


def _add_attributes(parts: list[bytes], tag: bytes, attributes: Attributes) -> None:
    """Each attribute as a repeated KeyValue field `tag`, onto `parts`. A scalar attribute's field (tag, length
    and pair) is kept: most repeat from span to span (a method, a route, a collection, a status). The store is
    emptied when full, so values that never repeat (a path) cannot crowd the others out for long."""
    if not attributes:
        return
    pairs = _pairs.get(tag)
    if pairs is None:
        pairs = _pairs[tag] = {}
    for key, value in attributes.items():
        if type(value) in _SCALARS:
            kept = (key, type(value), value)  # the type: True == 1, yet they encode differently
            encoded = pairs.get(kept)
            if encoded is None:
                encoded = tag + _length_prefixed(_key_value(key, value))
                if len(pairs) >= _PAIRS_KEPT:
                    pairs.clear()
                pairs[kept] = encoded
            parts.append(encoded)
        else:
            parts += (tag, _length_prefixed(_key_value(key, value)))


def _key_value(key: str, value: Any) -> bytes:
    return _string_field(_KEY_VALUE_KEY, key) + _len_field(_KEY_VALUE_VALUE, _any(value))


def _length_prefixed(payload: bytes) -> bytes:
    return _varint(len(payload)) + payload


def _any(value: Any) -> bytes:
    """An AnyValue (its oneof is written even at a default value: it says which one is set)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _len_field(_ANY_STRING, value.encode("utf-8"))
    if isinstance(value, int):
        return _ANY_INT + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: two's complement, ten bytes when negative
    if isinstance(value, float):
        return _ANY_DOUBLE + _DOUBLE(value)
    if isinstance(value, bytes):
        return _len_field(_ANY_BYTES, value)
    if isinstance(value, Sequence):
        return _len_field(_ANY_ARRAY, b"".join(_len_field(_LIST_VALUES, _any(item)) for item in value))
    if isinstance(value, Mapping):
        pairs = (
            _string_field(_KEY_VALUE_KEY, str(key)) + _len_field(_KEY_VALUE_VALUE, _any(item))
            for key, item in value.items()
        )
        return _len_field(_ANY_KVLIST, b"".join(_len_field(_LIST_VALUES, pair) for pair in pairs))
    raise TypeError(f"an attribute value of type {type(value).__name__} has no OTLP encoding")
