"""The pieces of a traced GET, each in a hot loop (`python -m bench.tracing_pieces`): what the `tracing` workload
measures served, taken apart. Thread CPU (time.thread_time) of the loop's thread, the best of RUNS runs:

- the request path of one GET as a served load makes it: its server span through gateway.server_spans (the
  request's attributes, the deadline attribute the store sets, route and status, made current and restored),
  and its share of a coalesced read (COALESCED GETs a read, about what the workload's load gives): the read's
  span linked to the other callers' server spans, PyMongo's start and success events of its `find` with the
  command span of models.tracing, every span ended into the real CountingSpanProcessor (whose export thread
  runs beside, not counted);
- encoding, per span, the spans that loop made (gateway.otlp_encoding, BATCH a request);
- sending one export (POST_BYTES, about the workload's average export) through the exporter's client (its
  requests transport) to a receiver on loopback that discards it.

No MongoDB and no HTTP server: the app under the middleware answers at once (its own cost is printed too). The
figures are for comparing code, not for a served GET: amid a served load the same pieces cost two to three times
more (bench/README.md, "The cost of tracing")."""

from __future__ import annotations

import asyncio
import contextvars
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pymongo import monitoring
from starlette.types import Message, Receive, Scope, Send

from bench.workloads.tracing import discarding_receiver
from gateway.otlp_encoding import encode_request
from gateway.recorded_spans import RecordingTracerProvider
from gateway.server_spans import ServerSpans
from gateway.settings import load_settings
from gateway.tracing import CountingSpanProcessor, DirectOTLPExporter, _Backlog, sampler
from models.coalesce import _SPAN, _traced_in_first_caller
from models.tracing import CommandSpans, set_current

GETS = 3000
RUNS = 7
COALESCED = 5
"""GETs a coalesced read answers: the workload's load (32 concurrent clients) gave about 4.6."""
BATCH = 512
POST_BYTES = 40_000
POSTS = 200
_FIND = {"find": "tasks", "filter": {"_id": {"$in": [1, 2, 3]}}, "$db": "tracking"}
_REPLY = {"cursor": {"firstBatch": [], "id": 0, "ns": "tracking.tasks"}, "ok": 1}
_SERVER = ("127.0.0.1", 27017)


class _Route:
    path = "/tracking/task/{taskId}"


class _KeepSome(SpanExporter):
    """Keeps the first spans it is given (to be encoded by the loop's thread), discards the others."""

    def __init__(self, most: int) -> None:
        self.spans: list[ReadableSpan] = []
        self._most = most

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += spans[: self._most - len(self.spans)]
        return SpanExportResult.SUCCESS


def best_of(runs: int, per: int, work: Callable[[], object]) -> float:
    """The least thread CPU, in µs, of `runs` runs of `work`, divided by `per`."""
    best = float("inf")
    for _ in range(runs):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best / per * 1e6


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    """A GET's answer as the fast path gives it, the route set and the deadline attribute set by the store."""
    scope["route"] = _Route()
    set_current("tracking.mongodb.deadline_ms", 5000.0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _discard(message: Message) -> None:
    pass


def _scope(task_id: int) -> Scope:
    return {"type": "http", "method": "GET", "path": f"/tracking/task/{task_id}", "scheme": "http", "headers": []}


class Pieces:
    """A traced app's provider, middleware and command listener, as gateway.tracing builds them."""

    def __init__(self) -> None:
        settings = load_settings(
            data_dir=tempfile.mkdtemp(prefix="tracing-pieces-"),
            otel_exporter_otlp_endpoint="http://127.0.0.1:9",
            otel_traces_sampler="always_on",
            otel_bsp_max_queue_size=100_000,
        )
        self.exported = _KeepSome(4 * BATCH)
        self.processor = CountingSpanProcessor(self.exported, _Backlog(settings.otel_bsp_max_queue_size), settings)
        provider = RecordingTracerProvider(
            sampler(settings), Resource.create({"service.name": "pieces"}), self.processor
        )
        self.store_tracer = provider.get_tracer("tracking-gateway.models")
        self.listeners = monitoring._EventListeners([CommandSpans(self.store_tracer)])
        self.callers: list[trace.Span] = []

        async def answer_and_join(scope: Scope, receive: Receive, send: Send) -> None:
            self.callers.append(trace.get_current_span())
            await _answer(scope, receive, send)

        self.middleware = ServerSpans(answer_and_join, provider.get_tracer("tracking-gateway"))
        self.loop = asyncio.new_event_loop()

    async def coalesced_gets(self) -> None:
        for task_id in range(COALESCED):
            await self.middleware(_scope(task_id), _no_receive, _discard)
        callers, self.callers = self.callers, []
        read = contextvars.Context()
        read.run(_traced_in_first_caller, self.store_tracer, callers, COALESCED)
        read.run(self.find)

    def find(self) -> None:
        """A `find`'s events as PyMongo publishes them, then the coalesced read's end."""
        self.listeners.publish_command_start(_FIND, "tracking", 7, _SERVER, 1, 7)
        self.listeners.publish_command_success(
            timedelta(microseconds=100), _REPLY, "find", 7, _SERVER, 1, 7, database_name="tracking"
        )
        span = _SPAN.get()
        if span is not None:
            span.end()

    def request_path(self) -> None:
        for _ in range(GETS // COALESCED):
            self.loop.run_until_complete(self.coalesced_gets())

    def app_alone(self) -> None:
        async def gets() -> None:
            for task_id in range(GETS):
                await _answer(_scope(task_id), _no_receive, _discard)

        self.loop.run_until_complete(gets())


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def sending(client: Any, body: bytes) -> Callable[[], None]:
    def post() -> None:
        for _ in range(POSTS):
            assert client.export(body).success

    return post


def main() -> None:
    pieces = Pieces()
    print(f"request path per GET: {best_of(RUNS, GETS, pieces.request_path):.2f} µs", flush=True)
    print(f"  the app alone (in the line above): {best_of(RUNS, GETS, pieces.app_alone):.2f} µs")
    pieces.processor.force_flush()
    spans = pieces.exported.spans
    batches = [spans[start : start + BATCH] for start in range(0, len(spans), BATCH)]
    per_span = best_of(RUNS, len(spans), lambda: [encode_request(batch) for batch in batches])
    print(f"encoding per span ({len(spans)} spans of that loop, {BATCH} a request): {per_span:.2f} µs")
    body = b"\x0a" * POST_BYTES
    with discarding_receiver() as base:
        endpoint = f"{base}/v1/traces"
        client = DirectOTLPExporter(endpoint=endpoint, timeout=10)._client
        sending(client, body)()  # connection made, code warm
        print(f"one export of {POST_BYTES} bytes: {best_of(3, POSTS, sending(client, body)):.0f} µs")


if __name__ == "__main__":
    main()
