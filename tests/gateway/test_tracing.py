"""Traces, end to end: the gateway exports over OTLP/HTTP to a real receiver on loopback (tests.otlp), one trace
per request continuing the caller's traceparent, from the server span through the GraphQL operation to every
MongoDB command; log lines carry the trace id; nothing is set up without the variables; a collector that is
gone or slow costs dropped spans, never time."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from pymongo.read_concern import ReadConcern
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from gateway import observability
from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import EmbeddedMongo, free_port
from gateway.observability import log_handler
from gateway.server import server_config
from gateway.server_spans import redacted_query
from gateway.settings import Settings, SettingsError, load_settings
from gateway.tracing import SHUTDOWN_WAIT_S, start_tracing
from models import GraphStore
from models.history import HISTORY
from tests.conftest import TEST_DB
from tests.gateway.test_outages import DEADLINE_MS, is_stopped
from tests.helpers import AUTH, TOKEN, eventually, lifespan_client, next_event, subscribed, writing_history
from tests.otlp import ReceivedSpan, Receiver, otlp_receiver

SECRET_NAME = "payroll-run-7f3a"
"""Task data the tests write: it must show in no span."""
QUICK_EXPORT = {"otel_bsp_schedule_delay": 50}


def new_trace() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def traceparent(trace_id: str, span_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{span_id}-01"}


@pytest.fixture
def receiver() -> Any:
    with otlp_receiver() as running:
        yield running


@asynccontextmanager
async def traced_gateway(mongo_uri: str, data_dir: Path, endpoint: str, **overrides: Any) -> AsyncIterator[Any]:
    """A gateway app tracing to `endpoint`, on its own store of the test database opened with the app's tracer
    provider (as the CLI opens them); yields (app, settings, tracing, store)."""
    settings = load_settings(
        api_tokens=TOKEN, data_dir=data_dir, otel_exporter_otlp_endpoint=endpoint, **{**QUICK_EXPORT, **overrides}
    )
    tracing = start_tracing(settings)
    assert tracing is not None
    traced_store = await GraphStore.open(mongo_uri, TEST_DB, tracer_provider=tracing.provider)
    try:
        yield create_app(settings, Backend(store=traced_store), tracing), settings, tracing, traced_store
    finally:
        await traced_store.close()
        await tracing.shutdown()


@pytest.fixture
async def traced(store, mongo_uri, data_dir, receiver) -> AsyncIterator[tuple[httpx.AsyncClient, Receiver]]:
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, *_),
        lifespan_client(app, AUTH) as http,
    ):
        yield http, receiver


def assert_one_tree(spans: list[ReceivedSpan], caller_span: str) -> ReceivedSpan:
    """Every span's parent is in the trace, but the root's, which is the caller's span; returns the root."""
    ids = {span.span_id for span in spans}
    assert len(ids) == len(spans), "span ids repeat"
    roots = [span for span in spans if span.parent_id not in ids]
    assert len(roots) == 1, [(span.name, span.parent_id) for span in roots]
    assert roots[0].parent_id == caller_span
    return roots[0]


def mongodb_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.attributes.get("db.system.name") == "mongodb"]


def assert_no_task_data(spans: list[ReceivedSpan], *secrets_: str) -> None:
    for span in spans:
        shown = json.dumps([span.name, span.attributes])
        for secret in (SECRET_NAME, TOKEN, *secrets_):
            assert secret not in shown, (span.name, span.attributes)


def children_of(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_id == parent.span_id]


async def test_rest_requests_continue_the_callers_trace_down_to_each_mongodb_command(traced):
    http, receiver = traced
    trace_id, caller = new_trace()
    body = {"tasks": [{"id": 1, "name": SECRET_NAME, "type": "navigable-execution-task"}]}
    created = await http.post("/tracking/task?note=private-value", json=body, headers=traceparent(trace_id, caller))
    assert created.status_code == 200, created.text
    spans = await receiver.trace_of(trace_id, "POST /tracking/task")
    server = assert_one_tree(spans, caller)
    assert server.name == "POST /tracking/task" and server.kind == "server"
    assert server.service == "tracking-gateway"
    assert server.attributes["http.route"] == "/tracking/task"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.query"] == "note=REDACTED", "query values stay out of spans"
    inserts = [span for span in mongodb_spans(spans) if span.attributes["db.operation.name"] == "insert"]
    assert inserts, [span.name for span in spans]
    insert = inserts[0]
    assert insert.name == "insert tasks" and insert.kind == "client"
    assert insert.attributes["db.collection.name"] == "tasks"
    assert insert.attributes["db.namespace"] == TEST_DB
    assert insert.attributes["server.address"] and isinstance(insert.attributes["server.port"], int)
    assert "db.query.text" not in insert.attributes
    assert_no_task_data(spans, "private-value")

    # GET /tracking/task/{taskId} is answered ahead of the router (rest.fast_read): still named by its route.
    trace_id, caller = new_trace()
    read = await http.get("/tracking/task/1", headers=traceparent(trace_id, caller))
    assert read.status_code == 200 and read.json()["name"] == SECRET_NAME
    spans = await receiver.trace_of(trace_id, "GET /tracking/task/{taskId}")
    server = assert_one_tree(spans, caller)
    assert server.attributes["http.route"] == "/tracking/task/{taskId}"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["tracking.mongodb.deadline_ms"] == 10_000
    (find,) = mongodb_spans(spans)
    assert find.name == "find tasks" and find.parent_id == server.span_id
    assert_no_task_data(spans)

    # A refusal is traced with its status; a request without traceparent starts a trace of its own.
    assert (await http.get("/tracking/task/999")).status_code == 404

    def refusals() -> list[ReceivedSpan]:
        named = receiver.named("GET /tracking/task/{taskId}")
        return [span for span in named if span.attributes["http.response.status_code"] == 404]

    async def refusal_traced() -> bool:
        return bool(refusals())

    await eventually(refusal_traced, what="the 404's span")
    (refused,) = refusals()
    assert refused.parent_id == "" and refused.trace_id != trace_id


async def test_reads_coalesced_into_one_query_are_one_span_every_callers_trace_leads_to(traced):
    http, receiver = traced
    made = await http.post("/tracking/task", json={"tasks": [{"id": i, "name": SECRET_NAME} for i in range(1, 9)]})
    assert made.status_code == 200
    callers = [new_trace() for _ in range(8)]
    answers = await asyncio.gather(
        *(http.get(f"/tracking/task/{i}", headers=traceparent(*caller)) for i, caller in enumerate(callers, 1))
    )
    assert [answer.status_code for answer in answers] == [200] * 8
    coalesced = await receiver.wait_for("coalesced read")
    server_spans = set()
    for trace_id, _ in callers:
        spans = await receiver.trace_of(trace_id, "GET /tracking/task/{taskId}")
        server_spans |= {span.span_id for span in spans if span.kind == "server"}
    joined = {coalesced.parent_id, *coalesced.links}
    assert joined <= server_spans
    assert coalesced.attributes["tracking.reads.requests"] == len(joined) > 1
    (find,) = [span for span in receiver.of_trace(coalesced.trace_id) if span.parent_id == coalesced.span_id]
    assert find.name == "find tasks" and find.attributes["db.operation.name"] == "find"


async def test_a_link_transaction_shows_its_commit_queue_wait_and_deadline(traced):
    http, receiver = traced
    made = await http.post("/tracking/task", json={"tasks": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]})
    assert made.status_code == 200
    trace_id, caller = new_trace()
    linked = await http.put("/tracking/task/1/next?nextTaskId=2", headers=traceparent(trace_id, caller))
    assert linked.status_code == 200, linked.text
    spans = await receiver.trace_of(trace_id, "PUT /tracking/task/{taskId}/next")
    server = assert_one_tree(spans, caller)
    assert server.attributes["tracking.links.queue_wait_ms"] == 0
    assert server.attributes["tracking.mongodb.deadline_ms"] == 10_000
    commits = [span for span in spans if span.name == "commitTransaction admin"]
    assert len(commits) == 1, [span.name for span in spans]
    (commit,) = commits
    assert commit.parent_id == server.span_id and commit.kind == "client"
    assert commit.attributes["db.operation.name"] == "commitTransaction"
    in_transaction = [span for span in mongodb_spans(spans) if span.attributes.get("tracking.mongodb.transaction")]
    assert {"find", "update", "commitTransaction"} <= {span.attributes["db.operation.name"] for span in in_transaction}


async def test_graphql_operations_are_spans_named_by_operation_on_both_paths(traced):
    http, receiver = traced
    tasks = [{"id": 1, "name": SECRET_NAME, "job-id": "job-1"}, {"id": 2, "name": "b", "job-id": "job-1"}]
    assert (await http.post("/tracking/task", json={"tasks": tasks})).status_code == 200

    async def traced_query(query: str, name: str | None) -> tuple[list[ReceivedSpan], ReceivedSpan, ReceivedSpan]:
        trace_id, caller = new_trace()
        body = {"query": query, **({"operationName": name} if name else {})}
        answer = await http.post("/graphql", json=body, headers=traceparent(trace_id, caller))
        assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
        spans = await receiver.trace_of(trace_id, "POST /graphql")
        server = assert_one_tree(spans, caller)
        (operation,) = children_of(spans, server)
        assert_no_task_data(spans, "job-1")
        return spans, server, operation

    board = 'query Board { job(id: "job-1") { id taskCount statusCounts { status count } } }'
    spans, server, operation = await traced_query(board, "Board")
    assert server.attributes["http.route"] == "/graphql"
    assert operation.name == "query Board"
    assert operation.attributes["graphql.operation.type"] == "query"
    assert operation.attributes["graphql.operation.name"] == "Board"
    assert operation.attributes["tracking.graphql.path"] == "compiled"
    assert "graphql.document" not in operation.attributes
    reads = mongodb_spans(spans)
    assert reads and all(span.parent_id == operation.span_id for span in reads)

    spans, _, operation = await traced_query('{ task(id: "1") { id name @include(if: true) } }', None)
    assert operation.name == "query" and "graphql.operation.name" not in operation.attributes
    assert operation.attributes["tracking.graphql.path"] == "generic"
    assert mongodb_spans(spans) and all(span.parent_id == operation.span_id for span in mongodb_spans(spans))

    mutation = 'mutation Rename { updateTask(id: "2", patch: {name: "c"}) { id } }'
    spans, _, operation = await traced_query(mutation, "Rename")
    assert operation.name == "mutation Rename" and "tracking.graphql.path" not in operation.attributes
    writes = mongodb_spans(spans)
    assert writes and all(span.parent_id == operation.span_id for span in writes)


async def test_a_subscription_start_is_a_span_and_history_batches_are_traces_of_their_own(
    store, mongo_uri, data_dir, receiver, raw_db
):
    async with traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, settings, _, traced_store):
        async with served_with_logs(app, settings) as (port, _):
            trace_id, caller = new_trace()
            query = "subscription Watch { taskEvents { kind taskId } }"
            async with connect(
                f"ws://127.0.0.1:{port}/graphql",
                subprotocols=[Subprotocol("graphql-transport-ws")],
                additional_headers=traceparent(trace_id, caller),
            ) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": TOKEN}}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
                async with subscribed():
                    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
                writer = traced_store.history_writer("tracing-test")
                async with writing_history(raw_db, writer):
                    await traced_store.create_tasks([{"id": 5, "name": SECRET_NAME}])
                    assert (await next_event(ws))["taskId"] == "5"
                    batch = await receiver.wait_for("task history batch")
                    await kill_subscription_cursors(raw_db)  # the shared stream fails, and resumes
                    await traced_store.create_tasks([{"id": 6, "name": SECRET_NAME}])
                    assert (await next_event(ws, timeout=30))["taskId"] == "6"
                    resume = await receiver.wait_for("taskEvents resume")
        spans = await receiver.trace_of(trace_id, "subscription Watch", "taskEvents start")
    operation = assert_one_tree(spans, caller)
    assert operation.name == "subscription Watch"
    assert operation.attributes["graphql.operation.type"] == "subscription"
    (start,) = children_of(spans, operation)
    assert start.name == "taskEvents start" and start.attributes["tracking.events.by_job"] is False
    assert start.attributes["tracking.events.after"] is False
    polls = [span for span in spans if span.attributes.get("db.operation.name") == "getMore"]
    assert not polls, "the shared stream is in no subscription's trace: it serves them all"
    assert_no_task_data(spans)

    assert resume.parent_id == "" and resume.trace_id != trace_id, "a resume, maybe hours later: its own trace"
    assert resume.links == (), "the shared stream's resume belongs to no one subscription"
    assert resume.attributes["tracking.events.after"] is True
    resumed = await receiver.trace_of(resume.trace_id, "aggregate tasks")
    assert {span.parent_id for span in resumed if span is not resume} == {resume.span_id}

    assert batch.parent_id == "" and batch.trace_id != trace_id, "a batch is a trace of its own"
    assert batch.attributes["tracking.history.entries"] >= 1
    history = await receiver.trace_of(batch.trace_id, f"insert {HISTORY}")
    assert {span.parent_id for span in history if span is not batch} == {batch.span_id}
    assert_no_task_data(history)


async def kill_subscription_cursors(raw_db: Any) -> None:
    """Kill the cursors of the change streams open on the tasks (as an operator or a failover would end them)."""
    pipeline = [
        {"$currentOp": {"idleCursors": True, "allUsers": True}},
        {
            "$match": {
                "ns": f"{raw_db.name}.tasks",
                "cursor.originatingCommand.pipeline.0.$changeStream": {"$exists": True},
            }
        },
    ]
    admin = raw_db.client.get_database("admin", read_concern=ReadConcern("local"))
    cursors = [op["cursor"]["cursorId"] for op in await (await admin.aggregate(pipeline)).to_list(None)]
    assert cursors
    await raw_db.command("killCursors", "tasks", cursors=cursors)


@asynccontextmanager
async def served_with_logs(app: Any, settings: Settings) -> AsyncIterator[tuple[int, dict[str, io.StringIO]]]:
    """`app` behind the gateway's uvicorn configuration, its access log on, every line written through the
    gateway's handlers (text and JSON) into the streams yielded."""
    streams = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = [log_handler(log_format, stream) for log_format, stream in streams.items()]
    loggers = [logging.getLogger(name) for name in ("uvicorn.access", "gateway")]
    config = server_config(app, settings)
    config.port = free_port()
    server = uvicorn.Server(config)
    # Whatever earlier tests left on these loggers (a level, disabled by a logging config): on for this one.
    saved = [(logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.disabled = False
        for handler in handlers:
            logger.addHandler(handler)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        yield config.port, streams
    finally:
        server.should_exit = True
        try:
            await serving
        finally:
            for logger, (level, disabled) in zip(loggers, saved, strict=True):
                logger.setLevel(level)
                logger.disabled = disabled
                for handler in handlers:
                    logger.removeHandler(handler)


@pytest.fixture
def no_earlier_secrets(monkeypatch):
    """The log redacts every token configured in this process so far (gateway.observability.never_log), and
    other tests configure short ones ("t"), which would redact parts of the lines these tests read."""
    monkeypatch.setattr(observability, "_secrets", [])
    monkeypatch.setattr(observability, "_tokens", [])


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


def _batch_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("OtelBatch"))


async def test_without_an_endpoint_nothing_is_set_up_or_exported(
    store, tmp_path, monkeypatch, receiver, no_earlier_secrets
):
    """OpenTelemetry's other variables alone turn nothing on; OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none
    turn off even a configured endpoint."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "not-exported")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    threads = _batch_threads()
    for off in ({}, {"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        for name, value in {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **off}.items():
            if off:
                monkeypatch.setenv(name, value)
        settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path)
        assert start_tracing(settings) is None
        app = create_app(settings, Backend(store=store))
        streams = io.StringIO()
        logger = logging.getLogger("tracing-test.untraced")  # the gateway's handler alone, whatever else is set
        logger.propagate, logger.disabled = False, False
        logger.handlers[:] = [log_handler("json", streams)]
        async with lifespan_client(app, AUTH) as http:
            assert (await http.post("/tracking/task", json={"tasks": [{"name": "x"}]})).status_code == 200
            graphql = await http.post("/graphql", json={"query": "{ tasks { id } }"})
            assert graphql.status_code == 200
            logger.warning("beside the requests")
        assert json.loads(streams.getvalue().splitlines()[-1])["trace_id"] == "-"
        assert _batch_threads() == threads, "no span processor was started"
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), "no provider installed globally"
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    await asyncio.sleep(0.3)  # six export periods of a gateway that would trace
    assert receiver.requests == 0


async def test_the_standard_variables_configure_the_exporter(store, mongo_uri, tmp_path, monkeypatch, receiver):
    """The app reads OTEL_* from the environment, opens its own backend on the traced provider, and exports
    OTLP over HTTP/protobuf to OTEL_EXPORTER_OTLP_ENDPOINT's /v1/traces."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint + "/")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tracking-eu-1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    monkeypatch.setenv("TRACKING_MONGODB_URI", mongo_uri)
    monkeypatch.setenv("TRACKING_MONGODB_DB", TEST_DB)
    settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path)
    async with lifespan_client(create_app(settings), AUTH) as http:
        sampled, caller = new_trace()
        assert (await http.get("/tracking/task/7", headers=traceparent(sampled, caller))).status_code == 404
        spans = await receiver.trace_of(sampled, "GET /tracking/task/{taskId}")
        assert {span.service for span in spans} == {"tracking-eu-1"}
        assert mongodb_spans(spans), "the app's own backend traces its commands"
        unsampled = f"00-{secrets.token_hex(16)}-{caller}-00"
        assert (await http.get("/tracking/task/8", headers={"traceparent": unsampled})).status_code == 404
        assert (await http.get("/tracking/task/9")).status_code == 404  # a root: parentbased_always_off
    await asyncio.sleep(0.3)
    assert {span.trace_id for span in receiver.spans} == {sampled}, "only the sampled caller's trace"
    assert receiver.paths == {"/v1/traces"} and receiver.content_types == {"application/x-protobuf"}


@pytest.mark.hostile
async def test_a_collector_password_in_the_endpoint_is_used_and_never_logged(tmp_path, receiver, caplog):
    """A URL's user and password are the exporter's basic authentication: spans still go there, and the log
    line saying where traces go shows the collector without them."""
    endpoint = receiver.endpoint.replace("http://", "http://collector:s3cr3t-pw@")
    settings = load_settings(data_dir=tmp_path, otel_exporter_otlp_endpoint=endpoint, otel_bsp_schedule_delay=50)
    with caplog.at_level(logging.INFO, logger="gateway.tracing"):
        tracing = start_tracing(settings)
        assert tracing is not None
        tracing.provider.get_tracer("probe").start_span("probe").end()
        await receiver.wait_for("probe")
        await tracing.shutdown()
    assert f"traces go to {receiver.endpoint}/v1/traces" in caplog.text
    assert "s3cr3t-pw" not in caplog.text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://collector:4317"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1"),
    ],
)
def test_a_bad_variable_is_refused_naming_it(monkeypatch, tmp_path, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(api_tokens=TOKEN, data_dir=tmp_path)


def test_an_export_batch_larger_than_the_queue_is_refused_naming_both(tmp_path):
    with pytest.raises(SettingsError, match=r"OTEL_BSP_MAX_EXPORT_BATCH_SIZE.*OTEL_BSP_MAX_QUEUE_SIZE"):
        load_settings(data_dir=tmp_path, otel_bsp_max_queue_size=10, otel_bsp_max_export_batch_size=11)


def dropped(metrics_text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("tracking_trace_spans_dropped_total{")
    )


async def _answers_promptly(http: httpx.AsyncClient, count: int) -> None:
    for _ in range(count):
        started = time.monotonic()
        assert (await http.get("/tracking/task/1")).status_code == 404
        assert time.monotonic() - started < 2.0, "a request waited for the collector"


@pytest.mark.parametrize("trouble", ["gone", "slow", "refusing"])
async def test_a_collector_in_trouble_costs_dropped_spans_never_time(store, mongo_uri, data_dir, receiver, trouble):
    endpoint = f"http://127.0.0.1:{free_port()}" if trouble == "gone" else receiver.endpoint
    receiver.delay_s = 3.0 if trouble == "slow" else 0.0
    receiver.status = 503 if trouble == "refusing" else 200
    small = {"otel_bsp_max_queue_size": 4, "otel_bsp_max_export_batch_size": 2, "otel_exporter_otlp_timeout": 500}
    async with traced_gateway(mongo_uri, data_dir, endpoint, **small) as (app, _, tracing, _):
        async with lifespan_client(app, AUTH) as http:
            before = dropped((await http.get("/metrics")).text)
            await _answers_promptly(http, 30)

            async def counted() -> bool:
                return dropped((await http.get("/metrics")).text) > before

            await eventually(counted, what="dropped spans counted on /metrics")
        started = time.monotonic()
        await tracing.shutdown()
        assert time.monotonic() - started < SHUTDOWN_WAIT_S + 2, "stopping waited for the collector"


@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=5))
def test_query_values_never_reach_a_span(pairs):
    from urllib.parse import parse_qsl, urlencode

    redacted = parse_qsl(redacted_query(urlencode(pairs)), keep_blank_values=True)
    assert [name for name, _ in redacted] == [name for name, _ in parse_qsl(urlencode(pairs), keep_blank_values=True)]
    assert {value for _, value in redacted} <= {"REDACTED"}


@pytest.mark.parametrize(
    "header",
    [
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # an all-zero trace id is invalid
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # so is an all-zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is forbidden
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper-case hex
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",  # a short span id
        "0af7651916cd43dd8448eb211c80319c",
        "00-" + "a" * 4000,
    ],
)
async def test_a_malformed_traceparent_starts_a_trace_of_its_own(traced, header):
    http, receiver = traced
    answer = await http.get("/tracking/task/77", headers={"traceparent": header})
    assert answer.status_code == 404
    span = await receiver.wait_for("GET /tracking/task/{taskId}")
    assert span.parent_id == "" and span.trace_id not in header.lower()


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("path", "span_name"),
    [
        (f"/tracking/task/{TOKEN}", "GET /tracking/task/{taskId}"),  # a token where an id goes
        (f"/nowhere/{TOKEN}", "GET"),  # no route at all
        (f"/tracking/task/1?{TOKEN}", "GET /tracking/task/{taskId}"),  # a token as a parameter's name
        (f"/tracking/task/1?{quote(TOKEN + '=')}=x", "GET /tracking/task/{taskId}"),  # encoded, with a value
    ],
)
async def test_a_token_a_client_puts_in_the_url_reaches_no_span(traced, path, span_name):
    """The logs redact a configured token wherever a client puts it; the server span's `url.path` and
    `url.query` (names kept) must not carry it to the collector either."""
    http, receiver = traced
    await http.get(path)
    span = await receiver.wait_for(span_name)
    assert_no_task_data([span])
    assert TOKEN not in unquote(json.dumps(span.attributes)), span.attributes


def test_only_the_composition_root_uses_the_sdk():
    """models/, graphql_schema/, rest/ and web/ use OpenTelemetry's API only; the SDK and the exporter are
    gateway/tracing.py's (and the encoder's, gateway/otlp_encoding.py, which reads the SDK's finished spans)."""
    root = Path(__file__).parent.parent.parent
    users = set()
    for package in ("models", "graphql_schema", "rest", "web", "gateway", "ui"):
        for module in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
                if any(name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")) for name in names):
                    users.add(module.relative_to(root).as_posix())
    assert users == {"gateway/tracing.py", "gateway/otlp_encoding.py"}


@pytest.mark.slow
async def test_the_served_gateway_traces_from_its_variables_and_flushes_at_exit(mongo_uri, tmp_path, receiver):
    """`tracking-gateway serve` as operators run it: the variables alone turn traces on for the server, the
    store it opens (its commands), and the background work; SIGTERM sends what is queued and exits promptly."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "OTEL_"))},
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(tmp_path / "var"),
        "TRACKING_PORT": str(port),
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": "traced_process",
        "TRACKING_LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "served-gateway",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing leaves before exit: the shutdown must send it
    }
    command = [sys.executable, "-m", "gateway"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
    trace_id, caller = new_trace()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:

            async def ready() -> bool:
                assert process.poll() is None
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=90, what="the gateway")
            body = {"tasks": [{"id": 3}]}
            created = await http.post("/tracking/task", json=body, headers=traceparent(trace_id, caller))
            assert created.status_code == 200
    finally:
        process.terminate()
        started = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert time.monotonic() - started < 15, "the exit waited"
    spans = receiver.of_trace(trace_id)
    server = assert_one_tree(spans, caller)
    assert server.name == "POST /tracking/task" and server.service == "served-gateway"
    assert any(span.name == "insert tasks" for span in mongodb_spans(spans))
    assert receiver.named("task history batch"), "the history writer of the served gateway traces its batches"
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["trace_id"] == trace_id for line in logged if line["name"] == "uvicorn.access")
    assert any("traces go to" in line["message"] for line in logged)


@pytest.mark.slow
async def test_a_served_gateway_whose_collector_is_gone_still_exits_promptly(mongo_uri, tmp_path):
    """Each export to a collector that is gone retries for OTEL_EXPORTER_OTLP_TIMEOUT (here 30 s): SIGTERM must
    not wait for it, nor the interpreter's exit for the thread that does."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "OTEL_"))},
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(tmp_path / "var"),
        "TRACKING_PORT": str(port),
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": "traced_collector_gone",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30000",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
    }
    process = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:

            async def ready() -> bool:
                assert process.poll() is None
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=90, what="the gateway")
            for task_id in range(1, 21):
                started = time.monotonic()
                assert (await http.get(f"/tracking/task/{task_id}")).status_code == 404
                assert time.monotonic() - started < 2.0, "a request waited for the collector"
    finally:
        process.terminate()
        stopping = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert time.monotonic() - stopping < SHUTDOWN_WAIT_S + 8, "the exit waited for the collector"


async def test_two_traceparents_start_a_trace_of_their_own_and_repeated_tracestates_do_not_break_one(traced):
    http, receiver = traced
    (first, caller), (second, _) = new_trace(), new_trace()
    headers = [
        ("traceparent", traceparent(first, caller)["traceparent"]),
        ("traceparent", traceparent(second, caller)["traceparent"]),
    ]
    assert (await http.get("/tracking/task/71", headers=headers)).status_code == 404
    span = await receiver.wait_for("GET /tracking/task/{taskId}")
    assert span.parent_id == "" and span.trace_id not in (first, second), "an ambiguous caller is not followed"

    trace_id, caller = new_trace()
    headers = [*traceparent(trace_id, caller).items(), ("tracestate", "vendor=a"), ("tracestate", "other=b")]
    assert (await http.get("/tracking/task/72", headers=headers)).status_code == 404
    assert_one_tree(await receiver.trace_of(trace_id, "GET /tracking/task/{taskId}"), caller)


async def test_a_method_the_conventions_do_not_name_is_other_and_keeps_its_original(traced):
    http, receiver = traced
    trace_id, caller = new_trace()
    answer = await http.request("PURGE", "/tracking/task/1", headers=traceparent(trace_id, caller))
    assert answer.status_code == 405
    (server,) = await receiver.trace_of(trace_id, "HTTP /tracking/task/{taskId}")
    assert server.attributes["http.request.method"] == "_OTHER"
    assert server.attributes["http.request.method_original"] == "PURGE"
    assert server.attributes["http.response.status_code"] == 405 and not server.error


@pytest.mark.slow
async def test_a_request_past_its_deadline_says_so_on_its_failed_server_span(tmp_path, receiver):
    """mongod frozen (SIGSTOP: connected, answering nothing): the GET answers 503 at its deadline, and its
    server span carries the deadline, that it passed, and the failure (error.type, an error status)."""
    mongo = EmbeddedMongo(tmp_path / "frozen", cache_size_gb=0.25)
    uri = await mongo.start()
    try:
        settings = load_settings(
            api_tokens=TOKEN, data_dir=tmp_path, otel_exporter_otlp_endpoint=receiver.endpoint, **QUICK_EXPORT
        )
        tracing = start_tracing(settings)
        assert tracing is not None
        store = await GraphStore.open(uri, "frozen", timeout_ms=DEADLINE_MS, tracer_provider=tracing.provider)
        try:
            async with lifespan_client(create_app(settings, Backend(store=store), tracing), AUTH) as http:
                os.kill(mongo.process.pid, signal.SIGSTOP)
                try:
                    await eventually(lambda: is_stopped(mongo.process.pid), what="mongod stopped")
                    trace_id, caller = new_trace()
                    answer = await http.get("/tracking/task/1", headers=traceparent(trace_id, caller))
                finally:
                    os.kill(mongo.process.pid, signal.SIGCONT)
                assert answer.status_code == 503, answer.text
                spans = await receiver.trace_of(trace_id, "GET /tracking/task/{taskId}")
        finally:
            await store.close()
            await tracing.shutdown()
    finally:
        await mongo.stop()
    server = assert_one_tree(spans, caller)
    assert server.attributes["tracking.mongodb.deadline_ms"] == DEADLINE_MS
    assert server.attributes["tracking.mongodb.deadline_exceeded"] is True
    assert server.attributes["http.response.status_code"] == 503
    assert server.attributes["error.type"] == "503" and server.error
