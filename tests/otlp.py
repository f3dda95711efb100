"""A real OTLP/HTTP trace receiver on loopback for the tests: it decodes each ExportTraceServiceRequest
(opentelemetry-proto) and keeps the spans, or answers as a collector in trouble would (refusing, slow)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.helpers import eventually

TRACES_PATH = "/v1/traces"
SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict[str, Any]
    error: bool
    service: str
    links: tuple[str, ...] = ()
    trace_state: str = ""


@dataclass
class Receiver:
    port: int
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    status: int = 200
    """What the receiver answers (a 503 refuses every export)."""
    delay_s: float = 0.0
    """How long it waits before answering (a slow collector)."""
    answer_bytes: int = 0
    """A body this long after the OTLP answer (whatever answers at the endpoint sending more than a collector)."""
    answer_bytes_sent: list[int] = field(default_factory=list)
    """Of each such answer, how much went out before the exporter closed the connection."""
    trickle_s: float = 0.0
    """With `answer_bytes`: the padding goes out one byte per this many seconds (a proxy trickling its answer)."""
    retry_after: str | None = None
    """A `Retry-After` header on a refusal (`status` other than 200)."""
    content_types: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def named(self, name: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.name == name]

    async def wait_for(self, name: str, timeout: float = 30) -> ReceivedSpan:
        """The first span received with this name, waiting for it."""

        async def received() -> bool:
            return bool(self.named(name))

        await eventually(received, timeout, what=f"a span named {name!r}")
        return self.named(name)[0]

    async def trace_of(self, trace_id: str, *names: str, timeout: float = 30) -> list[ReceivedSpan]:
        """The spans of a trace once every one of `names` has arrived."""

        async def complete() -> bool:
            return set(names) <= {span.name for span in self.of_trace(trace_id)}

        await eventually(complete, timeout, what=f"spans {names} of trace {trace_id}")
        return self.of_trace(trace_id)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind is not None else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=SPAN_KINDS.get(span.kind, "unspecified"),
                        attributes=_attributes(span.attributes),
                        error=span.status.code == 2,
                        service=service,
                        links=tuple(link.span_id.hex() for link in span.links),
                        trace_state=span.trace_state,
                    )
                )
    return spans


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """The receiver on a free loopback port, in a thread of its own (the SDK exports from a thread too)."""
    receiver = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.requests += 1
                receiver.content_types.add(self.headers.get("content-type", ""))
                receiver.paths.add(self.path)
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            if receiver.status != 200:
                self.send_response(receiver.status)
                if receiver.retry_after is not None:
                    self.send_header("retry-after", receiver.retry_after)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            spans = decode(body)
            with receiver.lock:
                receiver.spans.extend(spans)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer) + receiver.answer_bytes))
            self.end_headers()
            self.wfile.write(answer)
            if receiver.answer_bytes:
                self._send_padding(receiver.answer_bytes)

        def _send_padding(self, length: int) -> None:
            sent, chunk = 0, b"\0" * (1 if receiver.trickle_s else 65536)
            try:
                while sent < length:
                    self.wfile.write(chunk[: length - sent])
                    self.wfile.flush()
                    sent += min(len(chunk), length - sent)
                    if receiver.trickle_s:
                        time.sleep(receiver.trickle_s)
            except OSError:
                pass  # the exporter closed the connection
            with receiver.lock:
                receiver.answer_bytes_sent.append(sent)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # an exporter that gave up on a slow answer closed its connection: nothing to report

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="otlp receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
