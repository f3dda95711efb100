"""The compiled GraphQL path (graphql_schema.compiled) answers byte for byte as graphql-core does: every query
of the live view and of the docs pages, hand-picked edge cases (aliases, fragments, variables, __typename, errors, the
traversal bound) and generated selections, each sent to a gateway with the compiled path on and one with it
off (TRACKING_GRAPHQL_COMPILED=false), on the same job in a real MongoDB."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson.int64 import Int64
from graphql import OperationDefinitionNode, OperationType, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_schema.compiled_plan import TASK_FIELDS
from tests.helpers import AUTH, gateway_app, lifespan_client, live_view_documents

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
"""The tasks' and their changes' times: relative to now, for the history's retention (TRACKING_HISTORY_DAYS, a
TTL index) would delete changes dated further back while the test reads them, one path seeing them and not the
other."""
JOB = "compiled-job"
BOUND = 40
EQUIVALENCE_BUDGET = 10_000_000
"""Generated walks two levels deep, their tasks with pages of 50 changes, cost past the default budget's floor
(100,000) on a traversal bound of 40; the equivalence of the two paths is what these tests judge."""


def _ui_queries() -> dict[str, str]:
    """Every query the live view sends (ui/queries.js, as node reads it), by operation name: whatever queries
    the page holds now are tested."""
    queries = {}
    for document in live_view_documents().values():
        [operation] = parse(document).definitions
        assert isinstance(operation, OperationDefinitionNode) and operation.name, document
        if operation.operation is OperationType.QUERY:
            queries[operation.name.value] = document
    return queries


UI_QUERIES = _ui_queries()


def _ui_query(name: str) -> str:
    """A query of the live view by operation name."""
    return UI_QUERIES[name]


def _stored_task(task_id: int, **fields: Any) -> dict[str, Any]:
    level = task_id % 5
    return {
        "_id": Int64(task_id),
        "job-id": JOB,
        "status": ["DONE", "RUNNING", "FAILED", "READY", "DONE"][level],
        "name": f"step ü {task_id}",  # not ASCII: the encoder writes it the same way on both paths
        "type": "task",
        "root": task_id <= 2,
        "number-of-retries": task_id,
        "creation-timestamp": T0,
        "update-timestamp": T0 + timedelta(seconds=task_id),
        "start-time": T0 + timedelta(minutes=task_id),
        "finish-time": T0 + timedelta(minutes=task_id + level + 1),
        "nexts": [Int64(n) for n in (task_id + 1, task_id + 2) if n <= 30],
        "previous": [Int64(p) for p in (task_id - 1, task_id - 2) if p >= 1],
        **fields,
    }


@pytest.fixture
async def seeded(raw_db) -> None:
    tasks = [_stored_task(i) for i in range(1, 31)]
    del tasks[6]["status"]  # a task without a status: counted as null
    await raw_db.tasks.insert_many(tasks)
    await raw_db.tasks.insert_many([_stored_task(i, **{"job-id": "too-big"}) for i in range(100, 100 + BOUND + 1)])
    await raw_db.task_history.insert_many(_history_entries())


def _history_entries() -> list[dict[str, Any]]:
    """Recorded changes of some of the job's tasks (none for the others), as the history writer stores them."""
    entries = []
    for task_id in range(1, 31, 3):
        for change in range(task_id % 4):
            entries.append(
                {
                    "_id": f"{task_id:04d}{change:04d}",
                    "task": Int64(task_id),
                    "job": JOB,
                    "kind": "CREATED" if change == 0 else "UPDATED",
                    "fields": ["status", "job-id"] if change else [],
                    "at": T0 + timedelta(seconds=task_id * 10 + change),
                    **({"status": "RUNNING"} if change == 1 else {}),
                }
            )
    return entries


@pytest.fixture
async def clients(store, tmp_path, seeded) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A gateway with the compiled path and one without, on the same database; a budget the generated walks fit
    (nested walks with history pages cost more than the default's floor on so small a traversal bound)."""
    budget = {"graphql_max_traversal": BOUND, "graphql_max_cost": EQUIVALENCE_BUDGET}
    compiled, _ = gateway_app(store, tmp_path / "a", **budget)
    generic, _ = gateway_app(store, tmp_path / "b", graphql_compiled=False, **budget)
    async with lifespan_client(compiled, AUTH) as one, lifespan_client(generic, AUTH) as other:
        yield one, other


def _path_count(path: str) -> float:
    """How many queries the compiled path answered (`compiled`), left to graphql-core (`generic`) or failed on."""
    return REGISTRY.get_sample_value("tracking_graphql_compiled_total", {"path": path}) or 0.0


def _compiled_count() -> float:
    return _path_count("compiled")


async def same_answer(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], query: str, variables: dict[str, Any] | None = None
) -> tuple[bytes, bool]:
    """The body both gateways give (asserted equal, with the status and media type), and whether the compiled
    path answered it."""
    body = {"query": query, "variables": variables or {}}
    before, faults = _compiled_count(), _path_count("failed")
    compiled = await clients[0].post("/graphql", json=body)
    was_compiled = _compiled_count() > before
    assert _path_count("failed") == faults, f"the compiled path failed on {query}: see the log"
    generic = await clients[1].post("/graphql", json=body)
    assert compiled.status_code == generic.status_code
    assert compiled.headers["content-type"] == generic.headers["content-type"]
    assert _comparable(compiled.content) == _comparable(generic.content), query
    return compiled.content, was_compiled


def _comparable(body: bytes) -> bytes:
    """The body with each eventCursor (a point in the change stream, later at each read) as one placeholder."""
    cursors = re.findall(rb'"eventCursor":"([0-9A-Fa-f]+)"', body)
    assert all(cursors), body
    return re.sub(rb'"eventCursor":"[0-9A-Fa-f]+"', b'"eventCursor":"<cursor>"', body)


COMPILED_QUERIES = [
    _ui_query("Graph"),
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


def _variables(query: str, filled: bool) -> dict[str, Any]:
    """Values for the variables a query declares, by type: the required ones, and with `filled` the optional
    ones too (filters that keep some tasks; never a cursor, which only an answer gives)."""
    values: dict[str, Any] = {}
    for name, declared in re.findall(r"\$(\w+)\s*:\s*([\w\[\]!]+)", query.split("{", 1)[0]):
        required = declared.endswith("!")
        kind = declared.rstrip("!")
        if not (required or filled) or name == "after":
            continue
        if kind == "ID":
            values[name] = "3"
        elif kind == "String":
            values[name] = JOB if required or name in ("job", "jobId") else "1"
        elif kind == "Int":
            values[name] = 2
        elif kind == "Boolean":
            values[name] = True
        elif kind == "JobFilter":
            values[name] = {"idPrefix": "compiled", "status": ["DONE"]}
        elif kind.startswith("["):
            values[name] = ["DONE", "FAILED"]
    return values


@pytest.mark.parametrize("filled", [False, True], ids=["required-variables", "every-variable"])
@pytest.mark.parametrize("name", sorted(UI_QUERIES))
async def test_every_live_view_query_is_compiled_and_answers_as_graphql_core(clients, name, filled) -> None:
    """Each query the live view sends (ui/queries.js, so new ones are covered) is answered by the compiled
    path (tracking_graphql_compiled_total), with the bytes graphql-core gives."""
    query = _ui_query(name)
    body, compiled = await same_answer(clients, query, _variables(query, filled))
    assert b'"errors"' not in body, (name, body)
    assert compiled, f"{name}: answered field by field, not compiled"


def test_the_live_view_queries_are_found() -> None:
    """The queries the page is known to send are among those read (so a change there cannot leave the test
    above with nothing to check)."""
    assert {"Jobs", "Job", "Graph", "Page", "Levels", "Details"} <= set(UI_QUERIES)


async def test_a_second_page_of_the_live_view_queries_answers_as_graphql_core(clients) -> None:
    """Cursors from a first page lead to the same second page on both paths."""
    first = json.loads(
        (await same_answer(clients, _ui_query("Page").replace("first: 100", "first: 7"), {"id": JOB}))[0]
    )
    after = first["data"]["job"]["taskPage"]["pageInfo"]["endCursor"]
    body, compiled = await same_answer(clients, _ui_query("Page"), {"id": JOB, "after": after, "statusNot": ["X"]})
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
    task = _stored_task(4, **stored) if "_id" not in stored else _stored_task(2, **stored)
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
    """The summary aggregation counts any number id; the tasks read drop what is no task id: the counts then come
    from the aggregation, as graphql-core's do."""
    await raw_db.tasks.insert_one({"_id": junk_id, "job-id": JOB, "status": "JUNK"}, bypass_document_validation=True)
    query = '{ job(id: "compiled-job") { taskCount tasks { id } statusCounts { status count } } }'
    body, compiled = await same_answer(clients, query)
    assert compiled
    assert (b'"JUNK"' in body) is (junk_id != "not-a-task")


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


SCALARS = sorted(TASK_FIELDS)


@st.composite
def selections(draw: st.DrawFn) -> str:
    """A job query: its tasks (all, roots or filtered) with some fields, each maybe aliased, maybe through a
    fragment; maybe edges, counts, and tasks with their walks."""
    fields = draw(st.lists(st.sampled_from([*SCALARS, "__typename"]), min_size=1, max_size=8, unique=True))
    parts = [f"a{index}: {name}" if draw(st.booleans()) else name for index, name in enumerate(fields)]
    split = draw(st.integers(0, len(parts)))
    inline, spread = parts[:split], parts[split:]
    wrap = draw(st.sampled_from(["plain", "inline", "fragment"]))
    tasks = draw(st.sampled_from(["tasks", "roots", "tasks(root: false)", 'tasks(status: ["DONE", "FAILED"])']))
    tasks = draw(st.sampled_from([tasks, 'tasks(statusNot: ["DONE"], type: "task")', 'tasks(type: "other")']))
    if wrap == "inline":
        tasks = f"{tasks} {{ {' '.join(inline)} ... on Task {{ {' '.join(spread) or 'id'} }} }}"
    elif wrap == "fragment":
        tasks = f"{tasks} {{ {' '.join(inline)} ...F }}"
    else:
        tasks = f"{tasks} {{ {' '.join(parts)} }}"
    extras = draw(
        st.lists(
            st.sampled_from(
                [
                    "edges { to from }",
                    "statusCounts { count status }",
                    "taskCount",
                    "t: tasks { id nexts { id } }",
                    "h: tasks { id history { at kind changedFields status cursor } }",
                    "b: tasks { id blockedBy { id status } }",
                    "bt: tasks { id blockedBy(transitive: true) { id } }",
                    "bh: roots { id blockedBy { id history { kind at } } b2: blockedBy { status } }",
                    'hb: tasks(statusNot: ["DONE"]) { history { __typename status } blockedBy { id etag } }',
                    "r: roots { id descendants(maxDepth: 2) { id } ancestors { id } }",
                ]
            )
        )
    )
    job = f'job(id: "{JOB}") {{ {tasks} {" ".join(dict.fromkeys(extras))} }}'
    fragment = f" fragment F on Task {{ {' '.join(spread) or 'id'} }}" if wrap == "fragment" else ""
    return f"query {{ {job} }}{fragment}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=selections())
async def test_generated_selections_answer_as_graphql_core(clients, query) -> None:
    body, compiled = await same_answer(clients, query)
    assert compiled
    assert b'"errors"' not in body


WALK_FIELDS = ["nexts", "previous", "descendants", "ancestors", "blockedBy"]


@st.composite
def walk_arguments(draw: st.DrawFn, field: str) -> str:
    """Arguments a walk field takes, some of them, with values that keep some tasks and some that keep none."""
    if field == "blockedBy":
        return draw(st.sampled_from(["", "(transitive: true)", "(transitive: false)"]))
    chosen = []
    if field in ("descendants", "ancestors") and draw(st.booleans()):
        chosen.append(f"maxDepth: {draw(st.integers(0, 4))}")
    if draw(st.booleans()):
        chosen.append(f"status: {json.dumps(draw(st.lists(st.sampled_from(['DONE', 'FAILED', 'NOPE']), max_size=2)))}")
    if draw(st.booleans()):
        chosen.append(f"statusNot: {json.dumps(draw(st.lists(st.sampled_from(['DONE', 'READY']), max_size=2)))}")
    if draw(st.booleans()):
        chosen.append(f"type: {json.dumps(draw(st.sampled_from(['task', 'other'])))}")
    return f"({', '.join(chosen)})" if chosen else ""


CHANGE_FIELDS = ["cursor", "at", "kind", "changedFields", "status", "__typename"]


@st.composite
def history_selection(draw: st.DrawFn) -> str:
    """Task.history with some of a change's fields, maybe aliased, maybe a page shorter than the history (the
    tasks have up to 3 changes)."""
    fields = draw(st.lists(st.sampled_from(CHANGE_FIELDS), min_size=1, max_size=4, unique=True))
    page = draw(st.sampled_from(["", "(last: 1)", "(last: 2)", "(last: 50)"]))
    return (
        f"history{page} {{ "
        + " ".join(f"c{i}: {name}" if draw(st.booleans()) else name for i, name in enumerate(fields))
        + " }"
    )


@st.composite
def task_selection(draw: st.DrawFn, depth: int) -> str:
    """Some scalar fields (maybe aliased), maybe the task's history and, while `depth` lasts, walks with their own
    selections."""
    fields = draw(st.lists(st.sampled_from([*SCALARS, "__typename", "etag"]), min_size=1, max_size=4, unique=True))
    parts = [f"s{index}: {name}" if draw(st.booleans()) else name for index, name in enumerate(fields)]
    if draw(st.booleans()):
        parts.append(f"h: {draw(history_selection())}")
    if depth:
        walks = draw(st.lists(st.sampled_from(WALK_FIELDS), max_size=2))
        for index, walk in enumerate(walks):
            parts.append(f"w{index}: {walk}{draw(walk_arguments(walk))} {draw(task_selection(depth - 1))}")
    return f"{{ {' '.join(parts)} }}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task_id=st.integers(1, 31), selection=task_selection(2))
async def test_generated_walks_answer_as_graphql_core(clients, task_id, selection) -> None:
    """A task (or none: 31 does not exist) with generated scalar fields, history and walks (blockedBy plain and
    transitive among them), nested two deep."""
    body, compiled = await same_answer(clients, f'{{ task(id: "{task_id}") {selection} }}')
    assert b'"errors"' not in body
    assert compiled


async def test_a_compiled_query_over_websocket_answers_as_over_http(clients, live) -> None:
    query = COMPILED_QUERIES[1]
    over_http, _ = await same_answer(clients, query)
    before = _compiled_count()
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
    assert _compiled_count() > before


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
    before = {path: _path_count(path) for path in ("compiled", "generic", "failed")}
    answer = await clients[0].post("/graphql", json={"query": query})
    body = answer.json()
    assert body.get("data") is None
    assert body["errors"] == [{"message": "internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]
    assert _path_count("failed") == before["failed"] + 1
    assert _path_count("generic") == before["generic"]
    assert _path_count("compiled") == before["compiled"]
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
