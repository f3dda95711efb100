"""OpenTelemetry traces over OTLP/HTTP (protobuf), set up from the settings (OpenTelemetry's own variables) with
the SDK (gateway.recorded_spans makes its spans, gateway.otlp_encoding encodes them). Each app gets its own tracer
provider, passed explicitly to the server span middleware (gateway.server_spans), the GraphQL extension and the
graph store; nothing is installed globally, so a process without an endpoint has no SDK object at all and its
requests do no tracing work.

Never in the way of requests: spans wait in a bounded queue (OTEL_BSP_MAX_QUEUE_SIZE) that a thread of the
SDK empties towards the collector, each export bounded in time (OTEL_EXPORTER_OTLP_TIMEOUT). A collector that
is down, slow or refusing costs dropped spans, counted on /metrics: the SDK drops silently, so the processor
and the exporter are wrapped here to count (docs/decisions/tracing.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from prometheus_client import Counter

from gateway.collector_answers import BoundedAnswers
from gateway.otlp_encoding import encode_request
from gateway.recorded_spans import RecordedSpan, RecordingTracerProvider
from gateway.settings import Settings
from models import defaults

log = logging.getLogger(__name__)
TRACES_PATH = "v1/traces"
"""Where OTLP/HTTP takes traces under OTEL_EXPORTER_OTLP_ENDPOINT (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used
as it is)."""
SHUTDOWN_WAIT_S = 2.0
"""How long stopping the gateway waits for its last spans to go out: a collector that is gone must not hold
the shutdown (the SDK's own wait is OTEL_BSP_EXPORT_TIMEOUT, 30 s by default)."""
SPANS_EXPORTED = Counter("tracking_trace_spans_exported_total", "Spans the collector accepted.")
SPANS_DROPPED = Counter(
    "tracking_trace_spans_dropped_total",
    "Spans lost: queue_full (the export queue, OTEL_BSP_MAX_QUEUE_SIZE, was full: the oldest went), "
    "export_failed (the collector was down, slow or refused them).",
    ["reason"],
)
for _reason in ("queue_full", "export_failed"):
    SPANS_DROPPED.labels(_reason)  # both series exist from the start, at 0: alerts can take their rate


def traces_endpoint(settings: Settings) -> str | None:
    """Where spans go, or None when tracing is off: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
    OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces; none when OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none."""
    if settings.otel_sdk_disabled or settings.otel_traces_exporter == "none":
        return None
    if settings.otel_exporter_otlp_traces_endpoint is not None:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint is not None:
        return f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/{TRACES_PATH}"
    return None


def sampler(settings: Settings) -> Sampler:
    """OTEL_TRACES_SAMPLER (with OTEL_TRACES_SAMPLER_ARG, the ratio) as the SDK's sampler."""
    ratio = TraceIdRatioBased(settings.otel_traces_sampler_arg)
    root: Sampler = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF, "traceidratio": ratio}[
        settings.otel_traces_sampler.removeprefix("parentbased_")
    ]
    return ParentBased(root) if settings.otel_traces_sampler.startswith("parentbased_") else root


class _Backlog:
    """How many spans wait in the batch processor's queue, mirrored (the SDK does not tell): the queue drops its
    oldest span whenever one arrives while it holds `capacity`. Two counts, each written by one thread only (the
    spans' ends in the event loop, the takes in the SDK's export thread, whose exports the SDK serialises):
    reading an int is atomic, so neither side takes a lock, which every span's end would pay."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._added = 0
        self._taken = 0

    def add_one(self) -> bool:
        """One more span queued; False when it pushes another out."""
        if self._added - self._taken >= self.capacity:
            return False
        self._added += 1
        return True

    def take(self, count: int) -> None:
        self._taken = min(self._added, self._taken + count)


class DirectOTLPExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter (its endpoint, headers, compression, TLS, retries and timeout, from the settings
    and the standard variables), its spans encoded by gateway.otlp_encoding: the same bytes, at a fraction of
    the CPU of the exporter's protobuf objects. It relies on the exporter's `_client` (the transport of this
    pinned release; tests/gateway/test_tracing.py exports through it to a real receiver). Left out with `export`: the
    exporter's own self-metrics (off unless OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED; /metrics counts exports,
    CountingExporter) and its 64 MiB request bound (a batch is at most MAX_SPAN_QUEUE spans of a few KB)."""

    def __init__(self, endpoint: str, timeout: float, answers: BoundedAnswers | None = None) -> None:
        super().__init__(endpoint=endpoint, timeout=timeout, session=answers)
        self._answers = answers

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if self._answers is not None and self._answers.waiting():  # the collector's Retry-After
            return SpanExportResult.FAILURE
        try:
            body = encode_request(spans)
        except Exception:
            log.exception("encoding %d spans failed", len(spans))
            return SpanExportResult.FAILURE
        sent = self._client.export(body)
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE


class CountingExporter(SpanExporter):
    """The OTLP exporter, counting what the collector accepted and what it did not (down, slow, refusing)."""

    def __init__(self, exporter: SpanExporter, backlog: _Backlog) -> None:
        self._exporter = exporter
        self._backlog = backlog

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._backlog.take(len(spans))
        try:
            result = self._exporter.export(spans)
        except Exception:
            log.exception("exporting %d spans failed", len(spans))
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            SPANS_EXPORTED.inc(len(spans))
        else:
            SPANS_DROPPED.labels("export_failed").inc(len(spans))
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


class CountingSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting the spans its full queue drops, for a RecordingTracerProvider. A
    subclass rather than a wrapper: a span's end passes one processor call fewer (every span pays it)."""

    def __init__(self, exporter: SpanExporter, backlog: _Backlog, settings: Settings) -> None:
        super().__init__(
            exporter,
            max_queue_size=settings.otel_bsp_max_queue_size,
            schedule_delay_millis=settings.otel_bsp_schedule_delay,
            max_export_batch_size=settings.otel_bsp_max_export_batch_size,
            export_timeout_millis=settings.otel_bsp_export_timeout,
        )
        self._backlog = backlog

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the span if sampled (a sampler may say record-only: such a span is not exported), as the SDK's
        `on_end` does, through the SDK's batch processor's own `emit`, without the SDK's checks through three
        properties: a recorded span says whether it is sampled."""
        if not (span.sampled if type(span) is RecordedSpan else span.context and span.context.trace_flags.sampled):
            return
        if not self._backlog.add_one():
            SPANS_DROPPED.labels("queue_full").inc()
        self._batch_processor.emit(span)


def shown_endpoint(endpoint: str) -> str:
    """The endpoint as log lines show it: without the user and password a URL may carry (the exporter sends
    them to the collector as basic authentication: they are a credential)."""
    parts = urlsplit(endpoint)
    if "@" not in parts.netloc:
        return endpoint
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def service_resource(settings: Settings) -> Resource:
    """The resource of every span: OTEL_RESOURCE_ATTRIBUTES, the gateway's version, and `service.name` from
    OTEL_SERVICE_NAME, else from OTEL_RESOURCE_ATTRIBUTES, else the gateway's own name (the SDK's rule: the
    dedicated variable wins, and only when it is set)."""
    attributes: dict[str, str] = {SERVICE_VERSION: version("tracking-gateway")}
    if settings.otel_service_name is not None:
        attributes[SERVICE_NAME] = settings.otel_service_name
    resource = Resource.create(attributes)
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):  # the SDK's default
        resource = resource.merge(Resource({SERVICE_NAME: defaults.SERVICE_NAME}))
    return resource


@dataclass(frozen=True)
class Tracing:
    """This app's tracer provider and what feeds it; `shutdown` sends what is queued, bounded in time."""

    provider: TracerProvider
    endpoint: str

    async def shutdown(self) -> None:
        """Flush and stop, waiting at most SHUTDOWN_WAIT_S. The SDK's shutdown blocks (for as long as an export
        to a collector that is gone keeps retrying), so it runs in a daemon thread of its own: neither the
        event loop nor the process's exit waits for it past that (an executor's thread would hold the exit)."""
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()

        def stop() -> None:
            try:
                self.provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: no one waits any more
                    loop.call_soon_threadsafe(stopped.set)

        threading.Thread(target=stop, name="tracing shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(stopped.wait(), SHUTDOWN_WAIT_S)
        except TimeoutError:
            log.warning(
                "spans still queued for %s after %gs: dropped at exit", shown_endpoint(self.endpoint), SHUTDOWN_WAIT_S
            )


def start_tracing(settings: Settings) -> Tracing | None:
    """The tracer provider the settings ask for (its export thread started), or None: tracing off."""
    endpoint = traces_endpoint(settings)
    if endpoint is None:
        return None
    timeout_ms = settings.otel_exporter_otlp_traces_timeout or settings.otel_exporter_otlp_timeout
    backlog = _Backlog(settings.otel_bsp_max_queue_size)
    exporter = DirectOTLPExporter(
        endpoint=endpoint,
        timeout=min(timeout_ms, settings.otel_bsp_export_timeout) / 1000,
        answers=BoundedAnswers(),
    )
    resource = service_resource(settings)
    processor = CountingSpanProcessor(CountingExporter(exporter, backlog), backlog, settings)
    provider = RecordingTracerProvider(sampler(settings), resource, processor)
    log.info("traces go to %s (sampler %s)", shown_endpoint(endpoint), settings.otel_traces_sampler)
    return Tracing(provider, endpoint)
