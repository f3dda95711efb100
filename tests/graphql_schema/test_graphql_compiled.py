"""The compiled GraphQL path (graphql_schema.compiled) answers byte for byte as graphql-core does: every query
of the live view and of the docs pages, hand-picked edge cases (aliases, fragments, variables, __typename, errors, the
traversal bound) and generated selections, each sent to a gateway with the compiled path on and one with it
off (TRACKING_GRAPHQL_COMPILED=false), on the same job in a real MongoDB."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from bson.int64 import Int64
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_schema.compiled_plan import TASK_FIELDS
from tests.graphql_schema.compiled_pair import (
    JOB,
    UI_QUERIES,
    compiled_count,
    path_count,
    same_answer,
    stored_task,
    ui_query,
    ui_variables,
)
from tests.helpers import AUTH, gateway_app, lifespan_client

COMPILED_QUERIES = [
    ui_query("Graph"),
    '{ job(id: "compiled-job") { tasks { id status } edges { from to } statusCounts { status count } } }',
    'query { job(id: "compiled-job") { id taskCount statusCounts { status count } '
    "summary { firstStart lastFinish lastUpdate durationMs doneCount progress } } doneStatuses }",
    'query { j: job(id: "compiled-job") { __typename n: taskCount t: tasks { ...T } e: edges { __typename to '
    "from } } __typename } fragment T on Task { __typename i: id ... on Task { name root numberOfRetries } "
    "startTime creationTimestamp }",
    'query Q($id: String! = "compiled-job") { job(id: $id) { tasks { ... { id type } } criticalPath { id } } }',
    'query { job(id: "no-such-job") { tasks { id } } }',
    'query { task(id: "3") { id name status finishTime jobId root } missing: task(id: "999") { id } }',
    # a scalar selected twice under one key, directly and through fragments: one field, where it first appears
    'query { job(id: "compiled-job") { tasks { name id ... on Task { id status name } ...F } } } '
    "fragment F on Task { status x: id }",
]


@pytest.mark.parametrize("query", COMPILED_QUERIES)
async def test_compiled_queries_answer_as_graphql_core(clients, query) -> None:
    body, compiled = await same_answer(clients, query, {"id": JOB})
    assert compiled, "the compiled path should answer this query"
    assert b'"errors"' not in body


@pytest.mark.parametrize("filled", [False, True], ids=["required-variables", "every-variable"])
@pytest.mark.parametrize("name", sorted(UI_QUERIES))
async def test_every_live_view_query_is_compiled_and_answers_as_graphql_core(clients, name, filled) -> None:
    """Each query the live view sends (ui/queries.js, so new ones are covered) is answered by the compiled
    path (tracking_graphql_compiled_total), with the bytes graphql-core gives."""
    query = ui_query(name)
    body, compiled = await same_answer(clients, query, ui_variables(query, filled))
    assert b'"errors"' not in body, (name, body)
    assert compiled, f"{name}: answered field by field, not compiled"


def test_the_live_view_queries_are_found() -> None:
    """The queries the page is known to send are among those read (so a change there cannot leave the test
    above with nothing to check)."""
    assert {"Jobs", "Job", "Graph", "Page", "Levels", "Details"} <= set(UI_QUERIES)


async def test_a_second_page_of_the_live_view_queries_answers_as_graphql_core(clients) -> None:
    """Cursors from a first page lead to the same second page on both paths."""
    first = json.loads((await same_answer(clients, ui_query("Page").replace("first: 100", "first: 7"), {"id": JOB}))[0])
    after = first["data"]["job"]["taskPage"]["pageInfo"]["endCursor"]
    body, compiled = await same_answer(clients, ui_query("Page"), {"id": JOB, "after": after, "statusNot": ["X"]})
    assert compiled
    assert b'"id":"8"' in body


WALK_QUERIES = [
    '{ task(id: "10") { id ancestors(maxDepth: 2) { id name status } descendants(maxDepth: 1) { id name status '
    "nexts { id } previous { id } } nexts { id } previous { id } } }",
    '{ task(id: "10") { d: descendants { id } a: ancestors(status: ["DONE"], type: "task") { id etag } '
    'n: nexts(statusNot: ["DONE"]) { id nexts { id nexts { id } } } blockedBy { id } '
    "t: blockedBy(transitive: true) { id __typename } history { cursor at kind changedFields status } } }",
    '{ task(id: "30") { descendants { id } nexts { id } } none: task(id: "99999") { id } }',
    '{ job(id: "compiled-job") { levels { __typename depth c: count statusCounts { count } } '
    'taskPage(first: 5, type: "task", name: "Ü 1") { __typename pageInfo { hasNextPage } edges { cursor '
    "node { id previous { id } } } } criticalPath { id nexts { id } } } }",
    "{ jobs(first: 1) { __typename edges { __typename cursor node { id } } pageInfo { endCursor } } }",
    '{ job(id: "compiled-job") { a: tasks(root: false, statusNot: ["DONE"]) { id } roots { id etag nexts { id '
    'status } } t: tasks(type: "task", status: ["FAILED"]) { id history { kind } } edges { from } } }',
    '{ job(id: "compiled-job") { taskPage(first: 3) { a: edges { node { id } } b: edges { cursor n: node { name } '
    "m: node { status } } } } jobs(first: 2) { x: edges { node { id } } y: edges { node { taskCount } } } }",
    '{ jobs(first: 5, filter: { status: ["NOPE"] }) { edges { node { id taskCount } } pageInfo { hasNextPage } } }',
]


@pytest.mark.parametrize("query", WALK_QUERIES)
async def test_walks_pages_and_listings_are_compiled(clients, query) -> None:
    body, compiled = await same_answer(clients, query)
    assert compiled
    assert b'"errors"' not in body


ERROR_QUERIES = [
    ("query Graph($id: String!) { job(id: $id) { tasks { id } edges { from to } } }", {"id": "too-big"}),
    ('{ job(id: "too-big") { criticalPath { id } } }', {}),
    ('{ job(id: "compiled-job") { taskPage(first: 101) { edges { cursor } } } }', {}),  # TRACKING_GRAPHQL_MAX_PAGE
    ('{ job(id: "compiled-job") { taskPage(first: 0) { edges { cursor } } } }', {}),
    ('{ job(id: "compiled-job") { taskPage(after: "bad") { edges { cursor } } } }', {}),
    ('{ job(id: "compiled-job") { taskPage(name: "' + "x" * 201 + '") { edges { cursor } } } }', {}),
    ('{ jobs(first: 5, after: "bad") { edges { cursor } } }', {}),
    ("{ jobs(first: 1000) { edges { cursor } } }", {}),
    ('{ task(id: "10") { descendants(maxDepth: -1) { id } } }', {}),
    ('{ task(id: "0") { id } }', {}),
]


@pytest.mark.parametrize(("query", "variables"), ERROR_QUERIES)
async def test_errors_and_limits_answer_the_same(clients, query, variables) -> None:
    body, _ = await same_answer(clients, query, variables)
    assert b'"errors"' in body


@pytest.mark.parametrize("field", ["levels { depth }", "criticalPath { id }"])
async def test_a_cycle_a_tool_stored_is_the_same_error_on_both_paths(clients, raw_db, field) -> None:
    await raw_db.tasks.update_one({"_id": 5}, {"$set": {"nexts": [Int64(3)]}}, bypass_document_validation=True)
    body, _ = await same_answer(clients, f'{{ job(id: "compiled-job") {{ id {field} }} }}')
    assert b"cycle" in body


DOCS = Path(__file__).parent.parent.parent / "docs"


def _docs_queries() -> dict[str, str]:
    """Every query of the docs pages (their ```graphql blocks, one entry per operation; subscriptions and mutations
    left out: the compiled path answers queries),
    by page, block and operation, with the job each names replaced by this test's job."""
    queries = {}
    for page in sorted(DOCS.rglob("*.md")):
        for block_index, block in enumerate(re.findall(r"```graphql\n(.*?)```", page.read_text(), re.DOTALL)):
            for index, operation in enumerate(re.split(r"\n(?=query\b|subscription\b|mutation\b|\{)", block.strip())):
                if not operation.startswith(("subscription", "mutation")):
                    named = f"{page.relative_to(DOCS)}#{block_index}.{index}"
                    queries[named] = re.sub(r'((?:job\(id|jobId): )"[^"]*"', rf'\1"{JOB}"', operation)
    return queries


DOCS_QUERIES = _docs_queries()


def test_the_docs_hold_queries_to_test() -> None:
    """The reference's examples are found (a moved page or a changed fence would otherwise leave none)."""
    assert len(DOCS_QUERIES) >= 3, DOCS_QUERIES
    assert any("jobs(" in query for query in DOCS_QUERIES.values())


@pytest.mark.parametrize("query", DOCS_QUERIES.values(), ids=DOCS_QUERIES.keys())
async def test_docs_queries_are_compiled_and_answer_the_same_either_way(clients, query) -> None:
    body, compiled = await same_answer(clients, query)
    assert b'"errors"' not in body
    assert compiled


FALLBACK_QUERIES = [
    ('{ job(id: "too-big") { taskCount tasks { id } } }', {}),  # over the bound: the same error
    ('{ job(id: "too-big") { taskCount statusCounts { count } } }', {}),  # counts work at any size
    ("query($id: String!) { job(id: $id) { id } }", {"id": 5}),  # a variable that does not coerce
    ("query($id: String!) { job(id: $id) { id } }", {}),  # a missing variable
    ('{ job(id: "compiled-job") { tasks { id } tasks { name } } }', {}),  # merged response keys
    ('{ job(id: "compiled-job") { tasks @include(if: false) { id } } }', {}),
    ('{ task(id: "x") { id } }', {}),  # an id that is no task id
    ('{ job(id: "compiled-job") { tasks(root: true) { id } } }', {}),
    ('{ job(id: "compiled-job") { nope } }', {}),  # a validation error
    ("{ job(id: ", {}),  # a syntax error
]


@pytest.mark.parametrize(("query", "variables"), FALLBACK_QUERIES)
async def test_other_queries_and_errors_answer_the_same(clients, query, variables) -> None:
    await same_answer(clients, query, variables)


async def test_a_stored_value_readers_cannot_hold_is_left_out_on_both_paths(clients, raw_db) -> None:
    """A tool's out-of-range Int (past GraphQL's Int too) is served as null, with no error, either way."""
    await raw_db.tasks.update_one(
        {"_id": 4}, {"$set": {"number-of-retries": Int64(2**40)}}, bypass_document_validation=True
    )
    body, compiled = await same_answer(clients, '{ job(id: "compiled-job") { tasks { id numberOfRetries } } }')
    assert compiled
    assert b'{"id":"4","numberOfRetries":null}' in body


@pytest.mark.parametrize(
    "stored",
    [
        {"status": 7},  # a number where a string belongs: served as "7"
        {"name": True},
        {"root": "yes"},  # left out
        {"number-of-retries": 2.0},  # an exact float: served as 2
        {"number-of-retries": "3"},
        {"start-time": "2026-11-02T00:00:00Z"},  # a date as text: served as the date
        {"nexts": [Int64(5), Int64(5), Int64(6)]},  # an id twice: one edge
        {"nexts": [5.0, Int64(6)]},  # a mongosh float id
        {"nexts": [Int64(-1), Int64(6)]},
        {"nexts": "6"},
        {"_id": 2},  # an int32 id (the layout says int64)
    ],
)
async def test_a_document_with_wrong_types_is_read_the_same_on_both_paths(clients, raw_db, stored) -> None:
    """The compiled read checks a whole job a column at a time; any document it does not pass is read as every
    reader reads it (models.stored_task.readable_task), so both paths agree."""
    task = stored_task(4, **stored) if "_id" not in stored else stored_task(2, **stored)
    await raw_db.tasks.delete_one({"_id": task["_id"]})
    await raw_db.tasks.insert_one(task, bypass_document_validation=True)
    query = (
        '{ job(id: "compiled-job") { tasks { id status name root numberOfRetries startTime } edges { from to } '
        "statusCounts { status count } } }"
    )
    body, compiled = await same_answer(clients, query)
    assert compiled
    assert b'"errors"' not in body


@pytest.mark.parametrize("junk_id", ["not-a-task", -3, 2.5])
async def test_counts_with_documents_that_are_no_tasks_answer_the_same(clients, raw_db, junk_id) -> None:
    """The summary aggregation counts only task ids (a fractional double is none); the tasks read drop what is
    no task id: the counts then come from the aggregation, as graphql-core's do, and agree with the tasks."""
    await raw_db.tasks.insert_one({"_id": junk_id, "job-id": JOB, "status": "JUNK"}, bypass_document_validation=True)
    query = '{ job(id: "compiled-job") { taskCount tasks { id } statusCounts { status count } } }'
    body, compiled = await same_answer(clients, query)
    assert compiled
    assert b'"JUNK"' not in body


async def test_a_validated_document_is_validated_again_where_the_outcome_could_differ(clients, store, tmp_path) -> None:
    """Validation is remembered by schema, query text and requested operation: the same text sent without an
    operation name, or to a gateway with a tighter depth bound, is still refused."""
    document = "query A { doneStatuses } query B { __typename }"
    for _ in range(2):
        named = await clients[0].post("/graphql", json={"query": document, "operationName": "A"})
        assert "errors" not in named.json()
        unnamed = await clients[0].post("/graphql", json={"query": document})
        assert unnamed.json()["errors"][0]["extensions"]["code"] == "OPERATION_RESOLUTION_FAILURE"
    deep = '{ task(id: "3") { nexts { nexts { nexts { id } } } } }'
    assert "errors" not in (await clients[0].post("/graphql", json={"query": deep})).json()
    shallow, _ = gateway_app(store, tmp_path / "c", graphql_max_depth=2)
    async with lifespan_client(shallow, AUTH) as client:
        refused = (await client.post("/graphql", json={"query": deep})).json()
    assert "exceeds maximum operation depth" in refused["errors"][0]["message"]


def test_every_task_scalar_field_is_in_the_schema() -> None:
    from graphql_schema.schema import build_schema

    task_type = build_schema(12, 30, 5000)._schema.type_map["Task"]
    assert set(TASK_FIELDS) <= set(task_type.fields)  # type: ignore[attr-defined]


async def test_a_compiled_query_over_websocket_answers_as_over_http(clients, live) -> None:
    query = COMPILED_QUERIES[1]
    over_http, _ = await same_answer(clients, query)
    before = compiled_count()
    async with connect(f"ws://127.0.0.1:{live}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": query}}))
        frame = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(frame, str), "a text frame: browsers read binary ones as Blobs, not messages"
    message = json.loads(frame)
    assert message["type"] == "next"
    assert message["payload"]["data"] == json.loads(over_http)["data"]
    assert message["payload"]["extensions"]["cost"]["estimated"] > 0
    assert compiled_count() > before


FAULTS = [
    ("graphql_schema.compiled.plan", '{ job(id: "compiled-job") { id } }'),  # the planner
    ("graphql_schema.compiled_jobs.edge_rows", '{ job(id: "compiled-job") { edges { from to } } }'),  # a row builder
    ("graphql_schema.compiled_jobs.summary_row", '{ job(id: "compiled-job") { summary { progress } } }'),
    ("graphql_schema.compiled_tasks.history_rows", '{ job(id: "compiled-job") { tasks { history { kind } } } }'),
    ("graphql_schema.compiled_tasks._linked", '{ job(id: "compiled-job") { tasks { blockedBy { id } } } }'),
    ("graphql_schema.context.Context.read_histories", '{ task(id: "4") { history { at } } }'),  # a shared read
    ("graphql_schema.context.Context.walk_from_each", '{ task(id: "4") { blockedBy(transitive: true) { id } } }'),
]


@pytest.mark.parametrize(("target", "query"), FAULTS, ids=[target.rsplit(".", 1)[-1] for target, _ in FAULTS])
async def test_a_fault_in_the_compiled_path_is_an_error_not_a_second_run(
    clients, monkeypatch, caplog, target, query
) -> None:
    """An exception the compiled path did not plan for (a bug, injected here: in the planner, a read, a walk, a
    row builder) answers an internal error with its code and is logged; graphql-core does not run the operation
    again behind it."""

    def broken(*_: object) -> list[dict[str, Any]]:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(target, broken)
    before = {path: path_count(path) for path in ("compiled", "generic", "failed")}
    answer = await clients[0].post("/graphql", json={"query": query})
    body = answer.json()
    assert body.get("data") is None
    assert body["errors"] == [{"message": "internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]
    assert path_count("failed") == before["failed"] + 1
    assert path_count("generic") == before["generic"]
    assert path_count("compiled") == before["compiled"]
    assert any("injected fault" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)
    monkeypatch.undo()
    fine = await clients[1].post("/graphql", json={"query": query})
    assert "errors" not in fine.json()  # the query itself is fine: the fault was the compiled path's


def test_the_compiled_path_builds_no_code() -> None:
    """Its answers are built from plain functions and data: no eval or exec in any of its modules."""
    modules = sorted((Path(__file__).parent.parent.parent / "graphql_schema").glob("compiled*.py"))
    assert len(modules) >= 5, modules
    for module in modules:
        assert not re.search(r"\b(eval|exec|compile)\(", module.read_text()), module
