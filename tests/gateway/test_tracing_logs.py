"""Log lines carry the trace: every line written while serving a request holds its trace id beside its request
id, in the text and JSON formats, sampled or not."""

from __future__ import annotations

import json

import httpx

from tests.gateway.tracing_setup import (
    SECRET_NAME,
    new_trace,
    served_with_logs,
    traced_gateway,
    traceparent,
)
from tests.helpers import AUTH, eventually


async def test_every_log_line_of_a_request_carries_its_trace_id_beside_its_request_id(
    store, mongo_uri, data_dir, receiver, no_earlier_secrets
):
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, settings, *_),
        served_with_logs(app, settings) as (port, streams),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http,
    ):
        trace_id, caller = new_trace()
        headers = {**traceparent(trace_id, caller), "X-Request-ID": "req-traced-1"}
        assert (await http.get("/tracking/task/42", headers=headers)).status_code == 404
        untraced = await http.get("/tracking/task/43", headers={"X-Request-ID": "req-untraced-2"})
        assert untraced.status_code == 404
    text = [line for line in streams["text"].getvalue().splitlines() if "/tracking/task/42" in line]
    assert text and all(f"[req-traced-1 {trace_id}]" in line for line in text), text
    lines = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    traced_lines = [line for line in lines if line["request_id"] == "req-traced-1"]
    assert traced_lines and all(line["trace_id"] == trace_id for line in traced_lines)
    server = await receiver.wait_for("GET /tracking/task/{taskId}")
    assert {line["span_id"] for line in traced_lines} == {server.span_id}
    other = [line for line in lines if line["request_id"] == "req-untraced-2"]
    assert other and other[0]["trace_id"] not in ("-", trace_id), "a request without traceparent: a new trace"


async def test_a_request_its_caller_did_not_sample_exports_nothing_yet_its_log_lines_carry_the_callers_trace(
    store, mongo_uri, data_dir, receiver, no_earlier_secrets
):
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, settings, *_),
        served_with_logs(app, settings) as (port, streams),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http,
    ):
        trace_id, caller = new_trace()
        unsampled = {"traceparent": f"00-{trace_id}-{caller}-00", "X-Request-ID": "req-unsampled-1"}
        assert (await http.get("/tracking/task/44", headers=unsampled)).status_code == 404
        later_id, later_caller = new_trace()
        assert (await http.get("/tracking/task/45", headers=traceparent(later_id, later_caller))).status_code == 404
        # Spans are exported in the order they end: once the later request's arrived, the first one's would have.
        await receiver.trace_of(later_id, "GET /tracking/task/{taskId}")
    assert receiver.of_trace(trace_id) == []
    lines = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    unsampled_lines = [line for line in lines if line["request_id"] == "req-unsampled-1"]
    assert unsampled_lines and all(line["trace_id"] == trace_id for line in unsampled_lines), unsampled_lines


async def test_a_graphql_get_s_access_line_redacts_its_document_variables_and_extensions(
    store, mongo_uri, data_dir, receiver, no_earlier_secrets
):
    """Its server span's url.query shows names only; the access line shows the same for the parameters that
    carry task data (the document and its literals, the variables, the extensions), in both formats."""
    query = f'query Probe($n: String) {{ tasks(name: "{SECRET_NAME}") {{ id }} }}'
    params = {"query": query, "variables": json.dumps({"n": SECRET_NAME}), "extensions": "{}", "operationName": "Probe"}
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, settings, *_),
        served_with_logs(app, settings) as (port, streams),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http,
    ):
        await http.get("/graphql", params=params, headers={"X-Request-ID": "req-graphql-get"})
    shown = "/graphql?query=REDACTED&variables=REDACTED&extensions=REDACTED&operationName=Probe"
    text = [line for line in streams["text"].getvalue().splitlines() if "uvicorn.access [req-graphql-get" in line]
    lines = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    access = [line["message"] for line in lines if line["name"] == "uvicorn.access"]
    assert len(text) == 1 and len(access) == 1, (text, access)
    for line in (text[0], access[0]):
        assert shown in line and SECRET_NAME not in line, line


async def test_the_sdk_s_line_at_a_request_s_span_end_carries_its_request_id(
    store, mongo_uri, data_dir, receiver, no_earlier_secrets
):
    """A span dropped at the end of a request's server span (the export queue full behind a slow collector):
    the SDK's line says so within the request, and carries its request id."""
    receiver.delay_s = 2.0
    small = {"otel_bsp_max_queue_size": 1, "otel_bsp_max_export_batch_size": 1}
    logged = ("uvicorn.access", "gateway", "opentelemetry.sdk")
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint, **small) as (app, settings, *_),
        served_with_logs(app, settings, logged) as (port, streams),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http,
    ):

        async def dropped_within_a_request() -> bool:
            assert (await http.get("/tracking/task/46", headers={"X-Request-ID": "req-queue-full"})).status_code == 404
            return "Queue full" in streams["json"].getvalue()

        await eventually(dropped_within_a_request, what="a span dropped at a request's end")
    lines = [json.loads(line) for line in streams["json"].getvalue().splitlines()]
    full = [line for line in lines if "Queue full" in line["message"]]
    assert full and all(line["request_id"] == "req-queue-full" for line in full), full
