"""Traces, end to end: the gateway exports over OTLP/HTTP to a real receiver on loopback (tests.otlp), one trace
per request continuing the caller's traceparent, from the server span through the GraphQL operation to every
MongoDB command; no token or task data in a span; hostile trace context headers start traces of their own.
Log lines are in test_tracing_logs.py, the exporter's set-up and a collector in trouble in
test_tracing_exporter.py."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo.read_concern import ReadConcern
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import EmbeddedMongo
from gateway.observability import redacted_query
from gateway.server_spans import MAX_METHOD_ORIGINAL
from gateway.settings import load_settings
from gateway.tracing import start_tracing
from models import GraphStore
from models.history import HISTORY
from tests.conftest import TEST_DB
from tests.gateway.test_outages import DEADLINE_MS, is_stopped
from tests.gateway.tracing_setup import (
    QUICK_EXPORT,
    SECRET_NAME,
    assert_no_task_data,
    assert_one_tree,
    children_of,
    mongodb_spans,
    new_trace,
    served_with_logs,
    traced_gateway,
    traceparent,
)
from tests.helpers import AUTH, TOKEN, eventually, lifespan_client, next_event, subscribed, writing_history
from tests.otlp import ReceivedSpan


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
    deadline = server.attributes["tracking.mongodb.deadline_ms"]
    assert deadline == 10_000 and isinstance(deadline, int), "whole milliseconds"
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


async def test_only_commands_inside_a_transaction_say_so(traced):
    """A create reserves its ids outside any transaction (the id counter's findAndModify, or its update when the
    ids are given), then inserts in one: PyMongo numbers every retryable write (`txnNumber`), so only the
    transaction's commands may carry tracking.mongodb.transaction."""
    http, receiver = traced
    trace_id, caller = new_trace()
    tasks = {"tasks": [{"name": "a"}, {"id": 900, "name": "b"}]}
    made = await http.post("/tracking/task", json=tasks, headers=traceparent(trace_id, caller))
    assert made.status_code == 200, made.text
    spans = await receiver.trace_of(trace_id, "POST /tracking/task", "insert tasks", "commitTransaction admin")
    flagged = {span.name: span.attributes.get("tracking.mongodb.transaction", False) for span in mongodb_spans(spans)}
    counters = {name: flag for name, flag in flagged.items() if name.endswith(" counters")}
    assert counters and not any(counters.values()), flagged
    assert flagged["insert tasks"] is True and flagged["commitTransaction admin"] is True, flagged


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
    gateway/tracing.py's (with gateway/recorded_spans.py, the SDK's provider making its spans, the encoder,
    gateway/otlp_encoding.py, which reads the SDK's finished spans, and gateway/collector_answers.py, the
    exporter's HTTP session, which reads Retry-After as the exporter does)."""
    root = Path(__file__).parent.parent.parent
    users = set()
    for package in ("models", "graphql_schema", "rest", "web", "gateway", "ui"):
        for module in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
                if any(name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")) for name in names):
                    users.add(module.relative_to(root).as_posix())
    assert users == {
        "gateway/tracing.py",
        "gateway/recorded_spans.py",
        "gateway/otlp_encoding.py",
        "gateway/collector_answers.py",
    }


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


@pytest.mark.parametrize(
    "state",
    [
        f"tok={TOKEN}",
        "vendor=" + "a" * 600,
        "vendor=a," + ",".join(f"bad{n}=\x01" for n in range(400)),
        "Customer Name: ACME Corp 1",
        "vendor=a,Customer=ACME",
        "vendor=a,vendor=b",
        ",".join(f"k{n}=v" for n in range(33)),
    ],
    ids=[
        "a token",
        "over 512 characters",
        "malformed and long",
        "malformed",
        "a malformed member",
        "a key twice",
        "33 members",
    ],
)
async def test_a_tracestate_holding_a_token_past_its_size_or_malformed_is_not_continued(traced, caplog, state):
    """The caller's trace is followed, its tracestate is not: exported on every span of the trace, a token in it
    would reach the collector (the logs redact tokens); a malformed one is discarded, as W3C Trace Context says,
    without a line quoting it (any client could write its text into the log, on every request)."""
    http, receiver = traced
    trace_id, caller = new_trace()
    headers = {**traceparent(trace_id, caller), "tracestate": state}
    with caplog.at_level(logging.DEBUG, logger="opentelemetry"):
        assert (await http.get("/tracking/task/73", headers=headers)).status_code == 404
    spans = await receiver.trace_of(trace_id, "GET /tracking/task/{taskId}")
    assert assert_one_tree(spans, caller).trace_state == ""
    assert all(TOKEN not in span.trace_state for span in spans)
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry.trace")]

    kept, other = new_trace()
    headers = {**traceparent(kept, other), "tracestate": "vendor=a,other=b"}
    assert (await http.get("/tracking/task/73", headers=headers)).status_code == 404
    spans = await receiver.trace_of(kept, "GET /tracking/task/{taskId}")
    assert assert_one_tree(spans, other).trace_state == "vendor=a,other=b"


async def test_a_method_the_conventions_do_not_name_is_other_and_keeps_its_original(traced):
    http, receiver = traced
    trace_id, caller = new_trace()
    answer = await http.request("PURGE", "/tracking/task/1", headers=traceparent(trace_id, caller))
    assert answer.status_code == 405
    (server,) = await receiver.trace_of(trace_id, "HTTP /tracking/task/{taskId}")
    assert server.attributes["http.request.method"] == "_OTHER"
    assert server.attributes["http.request.method_original"] == "PURGE"
    assert server.attributes["http.response.status_code"] == 405 and not server.error

    trace_id, caller = new_trace()
    answer = await http.request("X" * 5000, "/tracking/task/1", headers=traceparent(trace_id, caller))
    assert answer.status_code == 405
    (server,) = await receiver.trace_of(trace_id, "HTTP /tracking/task/{taskId}")
    assert server.attributes["http.request.method_original"] == "X" * MAX_METHOD_ORIGINAL, "bounded"


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
