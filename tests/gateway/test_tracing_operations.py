"""A GraphQL operation's span says what ran and whether it failed, whatever the request: named only by an
operation its document defines, with a name no longer than OPERATION_NAME_MOST, and marked failed with its error
count whenever the answer holds errors (refused before execution, over its cost, no operation to run)."""

from __future__ import annotations

from typing import Any

from graphql_schema.operation_names import OPERATION_NAME_MOST
from graphql_schema.tracing import UNNAMED
from tests.gateway.tracing_setup import assert_one_tree, children_of, new_trace, traced_gateway, traceparent
from tests.helpers import AUTH, lifespan_client, operations_counted
from tests.otlp import ReceivedSpan


async def operation_span(http: Any, receiver: Any, body: object) -> tuple[int, dict[str, Any], ReceivedSpan]:
    trace_id, caller = new_trace()
    answer = await http.post("/graphql", json=body, headers=traceparent(trace_id, caller))
    spans = await receiver.trace_of(trace_id, "POST /graphql")
    (operation,) = children_of(spans, assert_one_tree(spans, caller))
    return answer.status_code, answer.json(), operation


async def test_an_operation_span_is_named_only_by_an_operation_of_its_document(traced):
    http, receiver = traced
    padding = "y" * 100_000
    status, answer, span = await operation_span(
        http, receiver, {"query": "query A { __typename }", "operationName": f"N{padding}"}
    )
    assert answer["errors"], answer
    assert span.name == UNNAMED and "graphql.operation.name" not in span.attributes
    assert span.error and span.attributes["tracking.graphql.errors"] == 1

    for name in (["A"], 7, {"A": 1}):  # not a name at all: refused before any operation (GraphQL over HTTP)
        trace_id, caller = new_trace()
        body = {"query": "query A { __typename }", "operationName": name}
        refused = await http.post("/graphql", json=body, headers=traceparent(trace_id, caller))
        assert refused.status_code == 400 and "`operationName` must be a string" in refused.text, refused.text
        spans = await receiver.trace_of(trace_id, "POST /graphql")
        assert not children_of(spans, assert_one_tree(spans, caller)), "no operation ran"

    long_name = "Q" + "x" * 10_000
    status, answer, span = await operation_span(http, receiver, {"query": f"query {long_name} {{ __typename }}"})
    assert status == 200 and "errors" not in answer
    assert span.attributes["graphql.operation.name"] == long_name[:OPERATION_NAME_MOST]
    assert span.name == f"query {long_name[:OPERATION_NAME_MOST]}"

    status, answer, span = await operation_span(
        http, receiver, {"query": "query A { __typename } query B { __typename }"}
    )
    assert answer["errors"] and span.name == UNNAMED and "graphql.operation.name" not in span.attributes
    assert span.error


REFUSED = [  # each with the name its error is counted under on /metrics
    ({"query": "query Costly { jobs(first: 100) { edges { node { id } } } }"}, "Costly"),  # over the cost limit
    ({"query": "fragment F on Task { id }"}, "anonymous"),
    ({"query": "subscription S { taskEvents { kind } }"}, "S"),  # not over HTTP
    ({"query": ""}, "anonymous"),
    ({"query": "query V { task(id: 1) { nope } }"}, "V"),
    ({"query": "query A { __typename }", "operationName": "C"}, "anonymous"),  # no operation C to run
]


async def test_an_answer_with_errors_marks_its_operation_span_failed_and_counts_as_an_error(
    store, mongo_uri, data_dir, receiver
):
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint, graphql_max_cost=1) as (app, *_),
        lifespan_client(app, AUTH) as http,
    ):
        names = sorted({name for _, name in REFUSED})
        errors_before = {name: operations_counted(name, "error") for name in names}
        for body, _ in REFUSED:
            status, answer, span = await operation_span(http, receiver, body)
            assert status >= 400 or answer.get("errors"), (body, answer)
            assert span.error, (body, answer, span)
            assert span.attributes["tracking.graphql.errors"] >= 1, (body, span)
        counted = {name: operations_counted(name, "error") - errors_before[name] for name in names}
        assert counted == {name: sum(1 for _, named in REFUSED if named == name) for name in names}
