"""The SDK's tracer provider with a leaner span: each span is the SDK's own `ReadableSpan` from its start, its
attributes a plain dict, handed as it is to the provider's span processor when it ends (the SDK's
`BatchSpanProcessor`, its bounded queue and export thread, unchanged). The SDK's own span costs several times
more on the request path: a lock, bounded attribute, event and link containers, each attribute checked through
abstract-class tests, and a second `ReadableSpan` copied at its end; and its dozen objects per span, kept until
exported, set off the garbage collector far more often (docs/decisions/tracing.md, "Spans recorded at the cost
of a dict").

What the SDK's spans do and these do the same: the provider's sampler decides (an unsampled span is the API's
`NonRecordingSpan`, with its ids, and nothing else; where its decision is known without asking, it is not
asked: a child of a span the same provider sampled, with any sampler OTEL_TRACES_SAMPLER names, and every
span with always_on, see `children_follow_sampled_parent`), the provider's id generator makes the ids, the
parent is the context's current span (a remote `SpanContext` is enough), the resource and instrumentation scope are the
provider's, and `SpanLimits` (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
OTEL_SPAN_EVENT_COUNT_LIMIT, OTEL_SPAN_LINK_COUNT_LIMIT, OTEL_LINK_ATTRIBUTE_COUNT_LIMIT) bound what a span keeps.
Attribute values of the plain types are kept as they are; any other is cleaned by the SDK's own `BoundedAttributes`
(sequences made tuples, invalid types dropped); start attributes that setting one by one would keep unchanged are
copied at once. Keys are not checked (the SDK drops an empty one): every key is a literal of the gateway's code.

What differs: a span belongs to the thread that made it (the gateway's event loop) until it ends, so it takes no
lock; after its end it is only read (by the export thread). The provider has exactly one span processor, given at
its creation, whose `on_start` is not called (the batch processor's does nothing)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from types import TracebackType

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

log = logging.getLogger(__name__)
_PLAIN = frozenset({str, bool, int, float})
"""Attribute value types kept as they are (exact types: a subclass goes through the SDK's cleaning)."""
_UNSET = Status(StatusCode.UNSET)
_NO_EVENTS: tuple[Event, ...] = ()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_TRACE_ID_MAX = 2**128 - 1
_SPAN_ID_MAX = 2**64 - 1


class RecordingTracerProvider(TracerProvider):
    """The SDK's `TracerProvider` (its sampler, resource, id generator, shutdown and flush) whose tracers make
    `RecordedSpan`s, all ended into `processor`, its one span processor."""

    def __init__(
        self, sampler: Sampler, resource: Resource, processor: SpanProcessor, id_generator: IdGenerator | None = None
    ) -> None:
        super().__init__(sampler=sampler, resource=resource, id_generator=id_generator)
        super().add_span_processor(processor)
        self.processor = processor
        self.limits = SpanLimits()
        self.children_follow_parent = children_follow_sampled_parent(sampler)
        self.samples_every_span = sampler is ALWAYS_ON

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        raise TypeError("a RecordingTracerProvider ends its spans into the one processor it was made with")

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace.Tracer:
        scope = InstrumentationScope(
            instrumenting_module_name, instrumenting_library_version or "", schema_url, attributes
        )
        return RecordingTracer(self, scope)


class RecordingTracer(trace.Tracer):
    """Starts `RecordedSpan`s as the SDK's tracer starts its spans: sampler, ids, parent from the context."""

    def __init__(self, provider: RecordingTracerProvider, scope: InstrumentationScope) -> None:
        self.provider = provider
        self.scope = scope

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        provider = self.provider
        parent_span = trace.get_current_span(context)
        parent: SpanContext | None = parent_span.get_span_context()
        ids = provider.id_generator
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
            trace_state: TraceState | None = parent.trace_state
            known = provider.samples_every_span or (  # a parent of this provider's: its sampler sampled it
                provider.children_follow_parent
                and type(parent_span) is RecordedSpan
                and parent_span._processor is provider.processor
            )
        else:
            parent = None
            trace_id = ids.generate_trace_id()
            random_trace_id = ids.is_trace_id_random()
            trace_state = None
            known = provider.samples_every_span
        if known:
            # The sampler's decision is known without asking it (children_follow_sampled_parent): sampled, with
            # the parent's trace state (none without a parent) and the attributes as given, as it would say.
            span_context = _local_context(
                trace_id, ids.generate_span_id(), _SAMPLED_RANDOM if random_trace_id else _SAMPLED, trace_state
            )
            return RecordedSpan(
                name, span_context, parent, kind, self, attributes, links, start_time, record_exception,
                set_status_on_exception,
            )  # fmt: skip
        sampled = provider.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        flags = _SAMPLED if sampled.decision is Decision.RECORD_AND_SAMPLE else _NOT_SAMPLED
        if random_trace_id:
            flags = TraceFlags(flags | TraceFlags.RANDOM_TRACE_ID)
        span_context = SpanContext(
            trace_id, ids.generate_span_id(), is_remote=False, trace_flags=flags, trace_state=sampled.trace_state
        )
        if sampled.decision is Decision.DROP:
            return trace.NonRecordingSpan(span_context)
        return RecordedSpan(
            name,
            span_context,
            parent,
            kind,
            self,
            sampled.attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            sampled.decision is Decision.RECORD_AND_SAMPLE,
        )

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API's is its own context-manager decorator
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class RecordedSpan(trace.Span, ReadableSpan):
    """A recording span, recording into the `ReadableSpan` the processor receives at its end (no copy);
    `sampled` says whether it is to be exported (the sampler's RECORD_AND_SAMPLE: its trace flags say the same,
    read at the cost of two properties)."""

    _instrumentation_info = None
    _status = _UNSET
    _end_time: int | None = None
    _record_exception = True
    _set_status_on_exception = True
    sampled = True
    _dropped = 0
    _dropped_events = 0
    _dropped_links = 0
    _events: list[Event] | tuple[Event, ...] = _NO_EVENTS
    _links: tuple[Link, ...] = ()

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        tracer: RecordingTracer,
        attributes: types.Attributes,
        links: Sequence[Link] | None,
        start_time: int | None,
        record_exception: bool,
        set_status_on_exception: bool,
        sampled: bool = True,
    ) -> None:
        # ReadableSpan's fields, set here rather than by its __init__ (which would make a Resource when none is given).
        # Fields most spans leave at their default (no end yet, no status, events, links or drops) are the class's
        # until set: each span's own dict holds what differs.
        provider = tracer.provider
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = provider.resource
        self._instrumentation_scope = tracer.scope
        self._start_time = start_time if start_time is not None else time_ns()
        self._limits = provider.limits
        self._processor = provider.processor
        if not record_exception:
            self._record_exception = False
        if not set_status_on_exception:
            self._set_status_on_exception = False
        if not sampled:
            self.sampled = False
        self._attributes: dict[str, types.AttributeValue] = {}
        if links:
            self._links = _bounded_links(links, self._limits)
            self._dropped_links = len(links) - len(self._links)
        if attributes:
            plain = _plain_within_limits(attributes, self._limits)
            if plain is not None:
                self._attributes = plain
            else:
                for key, value in attributes.items():
                    self.set_attribute(key, value)

    @property
    def dropped_attributes(self) -> int:
        return self._dropped

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # set at its start, never None

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is not None:
            log.debug("attribute %s set on the ended span %s: ignored", key, self._name)
            return
        if type(value) not in _PLAIN:
            cleaned = BoundedAttributes(attributes={key: value}, immutable=False)
            if key not in cleaned:
                return
            value = cleaned[key]
        limit = self._limits.max_span_attribute_length
        if limit is not None and type(value) is str and len(value) > limit:
            value = value[:limit]
        attributes = self._attributes
        most = self._limits.max_span_attributes
        if key in attributes or most is None or len(attributes) < most:
            attributes[key] = value
        else:
            self._dropped += 1

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self._end_time is not None:
            return
        if not isinstance(self._events, list):
            self._events = []
        most = self._limits.max_events
        if most is not None and len(self._events) >= most:
            self._dropped_events += 1  # the oldest goes, counted, as in the SDK's bounded list
            if not most:
                return
            del self._events[0]
        cleaned = BoundedAttributes(
            self._limits.max_event_attributes, attributes, max_value_len=self._limits.max_attribute_length
        )
        self._events.append(Event(name, cleaned, timestamp if timestamp is not None else time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is not None or not context.is_valid:
            return
        if self._limits.max_links is not None and len(self._links) >= self._limits.max_links:
            self._dropped_links += 1
            return
        self._links = (*self._links, _bounded_link(context, attributes, self._limits))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's: an OK status is final, UNSET is ignored."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An `exception` event with the exception's type only: its message may quote stored values."""
        self.add_event(
            "exception",
            {"exception.type": type(exception).__qualname__, "exception.escaped": escaped, **(attributes or {})},
            timestamp,
        )

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            log.debug("span %s ended twice: ignored", self._name)
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._processor.on_end(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Ends it; an exception escaping it is recorded (its type, as `record_exception`) and marks it failed,
        as the span was asked at its start."""
        if exc_val is not None and self.is_recording():
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, type(exc_val).__qualname__))
        self.end()


def _plain_within_limits(attributes: types.Attributes, limits: SpanLimits) -> dict[str, types.AttributeValue] | None:
    """`attributes` as a span keeps them when setting them one by one would change none (every value of a plain
    type, no string past the length limit, no more than the count limit), else None: the same result, without a
    call per attribute (a span's start attributes are most of what it records)."""
    assert attributes is not None
    most = limits.max_span_attributes
    if most is not None and len(attributes) > most:
        return None
    longest = limits.max_span_attribute_length
    for value in attributes.values():
        kind = type(value)
        if kind not in _PLAIN or (kind is str and longest is not None and len(value) > longest):  # type: ignore[arg-type]
            return None
    return dict(attributes)


def children_follow_sampled_parent(sampler: Sampler) -> bool:
    """Whether `sampler` samples every child of a span it sampled itself, with its parent's trace state
    and no attribute of its own: true of every sampler OTEL_TRACES_SAMPLER names (always_on; always_off, which
    samples no span to be a parent; traceidratio, which decides by the trace id, the parent's; and the
    parent-based ones, whose sampled local parent is followed by ALWAYS_ON), told by their types and, for a
    parent-based one, by its description (the SDK's public interface; its delegates are private). Any other
    sampler is asked for each span."""
    if sampler is ALWAYS_ON or sampler is ALWAYS_OFF or type(sampler) is TraceIdRatioBased:
        return True
    followed = f"localParentSampled:{ALWAYS_ON.get_description()},"
    return type(sampler) is ParentBased and followed in sampler.get_description()  # type: ignore[no-untyped-call]


def _local_context(trace_id: int, span_id: int, flags: TraceFlags, trace_state: TraceState | None) -> SpanContext:
    """The `SpanContext` the API's constructor makes (its validity worked out, no trace state an empty one), built
    as that constructor builds it, without its keyword call and defaults: every sampled span has one."""
    valid = 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX
    state = DEFAULT_TRACE_STATE if trace_state is None else trace_state
    return tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state, valid))


def _bounded_links(links: Sequence[Link] | None, limits: SpanLimits) -> tuple[Link, ...]:
    if not links:
        return ()
    valid = [link for link in links if link.context.is_valid]
    kept = valid if limits.max_links is None else valid[: limits.max_links]
    return tuple(_bounded_link(link.context, link.attributes, limits) for link in kept)


def _bounded_link(context: SpanContext, attributes: types.Attributes, limits: SpanLimits) -> Link:
    """A link, its attributes bounded as the SDK bounds them."""
    most, longest = limits.max_link_attributes, limits.max_attribute_length
    return Link(
        context, BoundedAttributes(most, attributes, max_value_len=longest, immutable=True) if attributes else None
    )
