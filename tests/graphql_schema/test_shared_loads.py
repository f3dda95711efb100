"""Fields that share one read: when an error nulls a field's parent, graphql-core cancels the parent's pending
fields, and a cancelled task cancels the future it awaits. One DataLoader future is awaited by every field that
loads the same key (two aliases of one job's counts), so the others got CancelledError (a plain-text 500), and a
batch cancelled before it was sent stayed the loader's current one, unsent: the field-by-field answer after the
compiled path's then waited forever (and its request outlived the client). Each case runs several times: which
field's task is pending when the error comes is the event loop's order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson.int64 import Int64

from tests.helpers import AUTH, gateway_app, lifespan_client

RUNS = 8
ANSWER_WITHIN_S = 60.0
"""Far beyond what these answers take (milliseconds): only a request that never answers reaches it."""


@pytest.fixture
async def job(client: Any) -> None:
    tasks = [{"id": 1, "job-id": "shared", "status": "DONE", "nexts": {"tasks": [{"id": 2, "job-id": "shared"}]}}]
    response = await client.post("/tracking/task", json={"tasks": tasks})
    assert response.status_code == 200, response.text


async def answered(store: Any, tmp_path: Any, compiled: bool, query: str, runs: int = RUNS) -> list[dict]:
    """The answers to `query`, sent `runs` times to a gateway with the compiled path on or off."""
    app, _ = gateway_app(store, tmp_path, graphql_compiled=compiled)
    bodies = []
    async with lifespan_client(app, AUTH) as http:
        for _ in range(runs):
            response = await asyncio.wait_for(http.post("/graphql", json={"query": query}), ANSWER_WITHIN_S)
            assert response.status_code == 200, (response.status_code, response.text)
            assert response.headers["content-type"].startswith("application/json"), response.text
            bodies.append(response.json())
    return bodies


REFUSED_BESIDE_PENDING = (
    '{ a: job(id: "shared") { id } t: task(id: "1") { descendants(maxDepth: -1) { id } } '
    'b: job(id: "shared") { summary { doneCount } } }',
    {"a": {"id": "shared"}, "t": None, "b": {"summary": {"doneCount": 1}}},
    [(["t", "descendants"], "BAD_USER_INPUT")],
)
"""A root field refused beside fields still reading: the compiled path's fallback waited forever."""
ALIAS_BESIDE_ITS_TWIN = (
    '{ a: job(id: "shared") { taskPage(after: "garbage") { pageInfo { hasNextPage } } taskCount } '
    'b: job(id: "shared") { taskCount } }',
    {"a": None, "b": {"taskCount": 2}},
    [(["a", "taskPage"], "BAD_USER_INPUT")],
)
"""An alias nulled by an error beside its twin reading the same counts: the twin got CancelledError."""


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "field-by-field"])
@pytest.mark.parametrize(
    ("query", "data", "errors"), [REFUSED_BESIDE_PENDING, ALIAS_BESIDE_ITS_TWIN], ids=["root", "alias"]
)
async def test_a_field_refused_beside_others_sharing_its_reads_leaves_them_answered(
    store, tmp_path, job, compiled, query, data, errors
):
    for body in await answered(store, tmp_path, compiled, query):
        assert body["data"] == data, body
        assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == errors, body


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "field-by-field"])
async def test_an_error_inside_an_object_another_error_nulled_is_never_in_the_answer(
    store, tmp_path, raw_db, job, compiled
):
    """The page's error nulls `job` (its fields are Non-Null up to it) while `criticalPath` meets a cycle a tool
    wrote: whether the cycle's error was recorded before graphql-core cancelled it was the event loop's order,
    so the answer held one error or two from run to run. It explains no null of the answer: never in it."""
    await raw_db.tasks.update_one({"_id": 2}, {"$addToSet": {"nexts": Int64(2), "previous": Int64(2)}})
    query = (
        '{ job(id: "shared") { taskPage(first: 2) { edges { node { id historyTruncated(last: 51) } } } '
        "criticalPath { id } } }"
    )
    for body in await answered(store, tmp_path, compiled, query, runs=5 * RUNS):  # the race went one way mostly
        assert body["data"] == {"job": None}, body
        assert [(e["path"][-1], e["extensions"]["code"]) for e in body["errors"]] == [
            ("historyTruncated", "BAD_USER_INPUT")
        ], body
    both = '{ job(id: "shared") { criticalPath { id } } task(id: "1") { history(last: 51) { at } } }'
    for body in await answered(store, tmp_path, compiled, both):  # errors whose nulls the answer holds: all kept
        assert body["data"] == {"job": {"criticalPath": None}, "task": None}, body
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPH_CYCLE", "BAD_USER_INPUT"], body


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "field-by-field"])
async def test_with_data_nulled_by_a_root_field_only_its_error_is_in_the_answer(store, tmp_path, raw_db, job, compiled):
    """`jobs` is Non-Null: its refused cursor nulls `data`, and the cycle met by `a` beside it was in the answer
    or not depending on the path."""
    await raw_db.tasks.update_one({"_id": 2}, {"$addToSet": {"nexts": Int64(2), "previous": Int64(2)}})
    query = '{ jobs(first: 2, after: "garbage") { edges { cursor } } a: job(id: "shared") { criticalPath { id } } }'
    for body in await answered(store, tmp_path, compiled, query):
        assert body["data"] is None, body
        assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [(["jobs"], "BAD_USER_INPUT")], body
