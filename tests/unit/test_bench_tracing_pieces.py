"""bench.tracing_pieces: the hot loops run against the real middleware, listener, processor, encoder and
exporter, and the spans they time are the ones a served GET makes (a server span each, a coalesced read with its
links and its `find`), encoded as one request."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench import tracing_pieces
from gateway.otlp_encoding import encode_request


def test_the_pieces_are_a_served_gets_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing_pieces, "GETS", tracing_pieces.COALESCED * 2)
    pieces = tracing_pieces.Pieces()
    assert tracing_pieces.best_of(1, tracing_pieces.GETS, pieces.request_path) > 0
    pieces.processor.force_flush()
    request = ExportTraceServiceRequest.FromString(encode_request(pieces.exported.spans))
    spans = [span for resources in request.resource_spans for scope in resources.scope_spans for span in scope.spans]
    names = sorted(span.name for span in spans)
    reads = 2
    assert names == sorted(
        ["GET /tracking/task/{taskId}"] * tracing_pieces.GETS + ["coalesced read", "find tasks"] * reads
    )
    (read, _) = [span for span in spans if span.name == "coalesced read"]
    assert len(read.links) == tracing_pieces.COALESCED - 1
    server = next(span for span in spans if span.name.startswith("GET"))
    keys = {attribute.key for attribute in server.attributes}
    assert {"http.route", "http.response.status_code", "tracking.mongodb.deadline_ms", "url.path"} <= keys
