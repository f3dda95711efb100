"""gateway.tracing's counting processor: its mirror of the export queue says a span pushed another out exactly
when the SDK's bounded queue drops its oldest, from counts each written by one thread; only sampled spans are
queued."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult

from gateway.recorded_spans import RecordingTracerProvider
from gateway.settings import Settings
from gateway.tracing import CountingExporter, CountingSpanProcessor, _Backlog


@given(
    capacity=st.integers(min_value=1, max_value=8),
    steps=st.lists(st.one_of(st.just(0), st.integers(min_value=1, max_value=10)), max_size=60),
)
def test_the_backlog_counts_what_a_bounded_queue_drops(capacity: int, steps: list[int]):
    """0 ends a span (queued at the left, the oldest falls out at the right when full, as the SDK's deque);
    n takes a batch of up to n spans for export."""
    queue: deque[int] = deque(maxlen=capacity)
    backlog = _Backlog(capacity)
    for number, step in enumerate(steps):
        if step == 0:
            pushed_out = len(queue) == capacity
            queue.appendleft(number)
            assert backlog.add_one() is not pushed_out
        else:
            batch = [queue.pop() for _ in range(min(step, len(queue)))]
            backlog.take(len(batch))


class RecordOnly(Sampler):
    """Records every span and samples none (the SDK's RECORD_ONLY): processors see it, exporters must not."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "RecordOnly"


class Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_only_sampled_spans_are_queued_and_counted():
    """As the SDK's batch processor: a span recorded but not sampled never reaches the exporter nor the
    backlog, a sampled one does."""
    settings = Settings()
    for sampler, exported in ((RecordOnly(), 0), (ALWAYS_ON, 1)):
        kept = Kept()
        backlog = _Backlog(settings.otel_bsp_max_queue_size)
        processor = CountingSpanProcessor(CountingExporter(kept, backlog), backlog, settings)
        provider = RecordingTracerProvider(sampler, Resource.create({}), processor)
        span = provider.get_tracer("test").start_span("a")
        assert span.is_recording()
        span.end()
        assert processor.force_flush()
        assert len(kept.spans) == exported
        assert backlog._added == exported == backlog._taken, "the backlog counted only what was queued"
        provider.shutdown()
