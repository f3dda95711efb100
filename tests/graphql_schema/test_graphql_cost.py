"""The cost budget (graphql_schema.cost): estimated from the document, arguments and variables before anything
runs; over TRACKING_GRAPHQL_MAX_COST an operation is refused in milliseconds with COST_LIMIT_EXCEEDED, reading
nothing and changing nothing; every query of the live view and the README fits the default on a job of
TRACKING_GRAPHQL_MAX_TRAVERSAL tasks; answers report their estimate in `extensions.cost`."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, parse
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.settings import load_settings
from graphql_schema.context import default_max_cost
from graphql_schema.cost import Bounds, cost_reference, estimate_cost
from graphql_schema.schema import build_schema
from tests.conftest import TEST_DB
from tests.graphql_schema.compiled_pair import UI_QUERIES, ui_query, ui_variables
from tests.graphql_schema.test_graphql import rest_create
from tests.helpers import AUTH, gateway_app, lifespan_client
from tests.monitoring import CommandLog, monitored_store

ROOT = Path(__file__).parent.parent.parent
DEFAULTS = load_settings()
TRAVERSAL = DEFAULTS.graphql_max_traversal
LIMIT = default_max_cost(TRAVERSAL)
SCHEMA = build_schema(DEFAULTS.graphql_max_depth, DEFAULTS.graphql_max_aliases, DEFAULTS.graphql_max_tokens)._schema


def cost(
    query: str,
    variables: dict[str, Any] | None = None,
    operation: str | None = None,
    job_sizes: dict[str, int] | None = None,
) -> int:
    """The estimate, every job named by id being of `job_sizes` tasks (not counted: the traversal bound)."""
    estimated = estimate_cost(SCHEMA, parse(query), operation, variables, Bounds(TRAVERSAL, job_sizes or {}))
    assert estimated is not None, query
    return estimated.cost


def _docs_operations() -> list[str]:
    """Every ```graphql block of the docs pages but subscriptions (they have no cost: events are not queried)."""
    blocks = [
        block
        for page in sorted((ROOT / "docs").rglob("*.md"))
        for block in re.findall(r"```graphql\n(.*?)```", page.read_text(), re.DOTALL)
    ]
    return [block for block in blocks if not block.lstrip().startswith("subscription")]


WHOLE_JOB = '{ job(id: "j") { tasks { id status history { at kind } blockedBy { id } } } }'
HOSTILE_ALIAS = "tasks { id etag blockedBy(transitive: true) { id } history { at kind } }"
HOSTILE = '{ job(id: "j") { ' + " ".join(f"a{index}: {HOSTILE_ALIAS}" for index in range(30)) + " } }"


@pytest.mark.parametrize("name", sorted(UI_QUERIES))
def test_every_live_view_query_fits_the_default_budget(name) -> None:
    """On a job of TRACKING_GRAPHQL_MAX_TRAVERSAL tasks (counted, or not counted: the bound stands in)."""
    query = ui_query(name)
    variables = {**ui_variables(query, True), "depth": 10}  # the deepest neighbourhood the page offers
    job = variables.get("id", variables.get("job"))
    assert cost(query, variables) <= LIMIT, name
    assert cost(query, variables, job_sizes={job: TRAVERSAL} if isinstance(job, str) else {}) <= LIMIT, name


def test_every_docs_query_fits_the_default_budget() -> None:
    estimated = {}
    for block in _docs_operations():
        for operation in parse(block).definitions:
            name = operation.name.value if isinstance(operation, OperationDefinitionNode) and operation.name else None
            estimated[name] = cost(block, operation=name)
    assert {None, "Fleet", "OneJob"} <= set(estimated)
    assert all(value <= LIMIT for value in estimated.values()), estimated


def test_a_whole_job_with_history_and_blocking_tasks_fits_its_transitive_walks_do_not() -> None:
    history, links = DEFAULTS.graphql_max_history, 10  # the page a history returns by default; links' figure
    assert cost(WHOLE_JOB) == cost(WHOLE_JOB, job_sizes={"j": TRAVERSAL}) == 1 + TRAVERSAL * (1 + history + links)
    assert cost(WHOLE_JOB) <= LIMIT
    assert cost(HOSTILE) == 1 + 30 * TRAVERSAL * (1 + TRAVERSAL + history)
    assert cost(HOSTILE) > LIMIT
    assert cost('{ job(id: "j") { tasks { blockedBy(transitive: true) { id } } } }') > LIMIT


def test_a_history_costs_its_page() -> None:
    """A history returns at most `last` changes (TRACKING_GRAPHQL_MAX_HISTORY when not given, past it refused
    when it runs): that is its estimate, historyTruncated's too (it reads the same page)."""
    history = DEFAULTS.graphql_max_history
    assert cost('{ taskHistory(id: "1") { at } }') == history
    assert cost('{ taskHistory(id: "1", last: 3) { at } }') == 3
    assert cost('{ task(id: "1") { history(last: 10000) { at } } }') == 1 + history
    assert cost('{ task(id: "1") { historyTruncated(last: 4) } }') == 1 + 4
    page = '{ job(id: "j") { tasks { history(last: 50) { at } } } }'
    assert cost(page) == 1 + TRAVERSAL * 51 <= LIMIT
    three = " ".join(f"a{i}: tasks {{ history(last: 50) {{ at }} }}" for i in range(3))
    assert cost(f'{{ job(id: "j") {{ {three} }} }}') > LIMIT
    hostile = "{ " + " ".join(f'a{i}: taskHistory(id: "7") {{ at kind }}' for i in range(30)) + " }"
    assert cost(hostile) == 30 * history


NESTED = "query($job: String!) { job(id: $job) { tasks { id nexts { nexts { id } } } } }"


def test_a_job_named_by_id_costs_its_task_count() -> None:
    """A job's whole-job lists cost its task count (never more than the traversal bound), each job its own; a
    job not named by id (one of a listing) the bound; walks the bound whatever the job."""
    assert cost(NESTED, {"job": "small"}, job_sizes={"small": 5}) == 1 + 5 * (1 + 10 * (1 + 10))
    assert cost(NESTED, {"job": "small"}) == cost(NESTED, {"job": "big"}, job_sizes={"big": 10**9}) > LIMIT
    two = '{ a: job(id: "a") { tasks { id } roots { id } } b: job(id: "b") { edges { from } levels { depth } } }'
    assert cost(two, job_sizes={"a": 3, "b": 7}) == (1 + 3 + 3) + (1 + 7 + 7)
    listed = "{ jobs(first: 2) { edges { node { tasks { id } } } } }"
    assert cost(listed, job_sizes={"a": 3}) == 2 * (1 + 1 + 1 + TRAVERSAL)
    walks = '{ job(id: "a") { tasks { descendants { id } } } }'
    assert cost(walks, job_sizes={"a": 3}) == 1 + 3 * (1 + TRAVERSAL)
    through_fragment = 'query { job(id: "a") { ...J } } fragment J on Job { criticalPath { id } }'
    assert cost(through_fragment, job_sizes={"a": 4}) == 1 + 4


def test_variables_and_arguments_are_counted() -> None:
    query = "query($n: Int!, $ids: [ID!]!) { jobs(first: $n) { edges { node { id } } } tasks(ids: $ids) { id } }"
    small = cost(query, {"n": 1, "ids": ["1"]})
    assert cost(query, {"n": 50, "ids": ["1"]}) > small
    assert cost(query, {"n": 1, "ids": [str(i) for i in range(100)]}) == small + 99
    # A walk's maxDepth bounds nothing the estimate could rely on: one level of a wide fan-out is the whole walk.
    assert cost('{ task(id: "1") { descendants(maxDepth: 1) { id } } }') == 1 + TRAVERSAL
    assert cost('{ task(id: "1") { descendants { id } } }') == 1 + TRAVERSAL


@settings(max_examples=30, deadline=None)
@given(
    copies=st.integers(1, 30),
    selection=st.sampled_from(
        [
            "tasks { id history { at } }",
            "roots { nexts { previous { id } } }",
            "taskPage(first: 7) { edges { node { blockedBy { id } } } }",
            "levels { statusCounts { count } }",
            "taskCount",
        ]
    ),
    through_fragment=st.booleans(),
)
def test_aliases_and_fragments_count_each_time_they_are_selected(copies, selection, through_fragment) -> None:
    """Selecting a field under k aliases costs k times as much (plus the job itself), spelled out or through a
    fragment spread k times."""
    one = cost(f'{{ job(id: "j") {{ {selection} }} }}') - 1
    if through_fragment:
        spreads = " ".join(f'a{index}: job(id: "j") {{ ...F }}' for index in range(copies))
        assert cost(f"{{ {spreads} }} fragment F on Job {{ {selection} }}") == copies * (one + 1)
    else:
        aliased = " ".join(f"a{index}: {selection}" for index in range(copies))
        assert cost(f'{{ job(id: "j") {{ {aliased} }} }}') == copies * one + 1


def test_a_fragment_bomb_is_estimated_at_once() -> None:
    """Fragments spreading the one before twice, 40 deep: 2^40 copies of a selection, estimated in a few
    operations per fragment."""
    fragments = ["fragment F0 on Task { nexts { id } }"]
    fragments += [f"fragment F{i} on Task {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 41)]
    query = '{ task(id: "1") { ...F40 } } ' + " ".join(fragments)
    started = time.perf_counter()
    assert cost(query) == 1 + 2**40 * 10
    assert time.perf_counter() - started < 1


def test_the_reference_page_lists_every_rule_as_the_code_has_it() -> None:
    page = (ROOT / "docs" / "reference" / "graphql-cost.md").read_text()
    assert cost_reference() in page, "regenerate the table of docs/reference/graphql-cost.md from cost_reference()"


@pytest.fixture
async def gateway(store, mongo_uri, tmp_path) -> AsyncIterator[tuple[CommandLog, httpx.AsyncClient]]:
    async with monitored_store(mongo_uri, TEST_DB) as (monitored, log):
        app, _ = gateway_app(monitored, tmp_path)
        async with lifespan_client(app, AUTH) as client:
            yield log, client


async def seed_job(client: httpx.AsyncClient, job: str, size: int, first_id: int) -> None:
    """A chain of `size` tasks in `job`, ids from `first_id`."""
    await rest_create(client, *({"id": first_id + index, "job-id": job} for index in range(size)))
    for task_id in range(first_id, first_id + size - 1):
        linked = await client.put(f"/tracking/task/{task_id}/next?nextTaskId={task_id + 1}")
        assert linked.status_code < 300, linked.text


async def test_an_operation_over_the_budget_is_refused_before_anything_is_read(gateway) -> None:
    """Refused with nothing read but the job's task count (the job's transitive walks over the bound already on
    a 5-task job)."""
    log, client = gateway
    await seed_job(client, "j", 5, 100)
    await client.post("/graphql", json={"query": "{ __typename }"})  # the app's first request warms it up
    async with log.recorded():
        started = time.perf_counter()
        answer = await client.post("/graphql", json={"query": HOSTILE})
        took = time.perf_counter() - started
    body = answer.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "COST_LIMIT_EXCEEDED",
        "cost": cost(HOSTILE, job_sizes={"j": 5}),
        "limit": LIMIT,
    }
    assert "TRACKING_GRAPHQL_MAX_COST" in error["message"]
    assert log.commands == [("aggregate", "tasks")]  # the job's count, nothing else
    assert took < 2, took  # a loaded machine; the estimate itself takes about a millisecond
    strict = await client.post(
        "/graphql", json={"query": HOSTILE}, headers={"accept": "application/graphql-response+json"}
    )
    assert strict.status_code == 400


async def test_an_allowed_answer_reports_its_estimate(gateway) -> None:
    _, client = gateway
    body = (await client.post("/graphql", json={"query": WHOLE_JOB})).json()
    assert body == {"data": {"job": None}, "extensions": {"cost": {"estimated": cost(WHOLE_JOB), "limit": LIMIT}}}


async def test_a_mutation_over_the_budget_changes_nothing(gateway, raw_db) -> None:
    _, client = gateway
    tasks = ", ".join(f'{{ name: "t{i}", jobId: "j" }}' for i in range(120))
    mutation = f"mutation {{ createTasks(tasks: [{tasks}]) {{ id descendants {{ id }} }} }}"
    body = (await client.post("/graphql", json={"query": mutation})).json()
    assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    assert await raw_db.tasks.count_documents({}) == 0


SMALL_BUDGET = {"graphql_max_traversal": 40, "graphql_max_cost": 2000}
"""Nested links of a 40-task job (1 + 111 x 40) are over 2000; of a 5-task one (1 + 111 x 5) within it."""


async def test_the_same_selection_is_admitted_on_a_small_job_and_refused_on_a_big_one(mongo_uri, tmp_path) -> None:
    async with monitored_store(mongo_uri, TEST_DB) as (monitored, log):
        app, _ = gateway_app(monitored, tmp_path, **SMALL_BUDGET)
        async with lifespan_client(app, AUTH) as client:
            await seed_job(client, "small", 5, 1)
            await seed_job(client, "big", 30, 100)
            async with log.recorded():
                small = (await client.post("/graphql", json={"query": NESTED, "variables": {"job": "small"}})).json()
            assert small["extensions"]["cost"] == {"estimated": 1 + 111 * 5, "limit": 2000}
            assert [[len(task["nexts"]) for task in small["data"]["job"]["tasks"]]] == [[1, 1, 1, 1, 0]]
            assert log.commands[0] == ("aggregate", "tasks")  # the count, before the job is read
            async with log.recorded():
                started = time.perf_counter()
                big = (await client.post("/graphql", json={"query": NESTED, "variables": {"job": "big"}})).json()
                took = time.perf_counter() - started
            assert "data" not in big
            refused = {"code": "COST_LIMIT_EXCEEDED", "cost": 1 + 111 * 30, "limit": 2000}
            assert big["errors"][0]["extensions"] == refused
            assert log.commands == [("aggregate", "tasks")]  # counted, then refused: nothing else read
            assert took < 2, took  # a loaded machine; the count reads at most 41 index keys
            fits = '{ job(id: "big") { tasks { id } } }'  # within the budget at the bound: nothing counted
            async with log.recorded():
                body = (await client.post("/graphql", json={"query": fits})).json()
            assert body["extensions"]["cost"] == {"estimated": 1 + 40, "limit": 2000}
            assert ("aggregate", "tasks") not in log.commands


async def test_a_job_past_the_bound_is_costed_at_the_bound(store, tmp_path) -> None:
    """A job of more tasks than TRACKING_GRAPHQL_MAX_TRAVERSAL costs what the bound does (its whole-job lists
    are refused, TRAVERSAL_TOO_LARGE): the count stops past the bound."""
    app, _ = gateway_app(store, tmp_path, **SMALL_BUDGET)
    async with lifespan_client(app, AUTH) as client:
        await seed_job(client, "huge", 60, 1000)
        body = (await client.post("/graphql", json={"query": NESTED, "variables": {"job": "huge"}})).json()
    assert body["errors"][0]["extensions"] == {"code": "COST_LIMIT_EXCEEDED", "cost": 1 + 111 * 40, "limit": 2000}


async def test_the_budget_is_a_setting(store, tmp_path) -> None:
    app, _ = gateway_app(store, tmp_path, graphql_max_cost=5)
    async with lifespan_client(app, AUTH) as client:
        allowed = (await client.post("/graphql", json={"query": '{ task(id: "1") { nexts { id } } }'})).json()
        assert allowed["errors"][0]["extensions"] == {"code": "COST_LIMIT_EXCEEDED", "cost": 11, "limit": 5}
        fits = (await client.post("/graphql", json={"query": '{ task(id: "1") { id } }'})).json()
        assert fits == {"data": {"task": None}, "extensions": {"cost": {"estimated": 1, "limit": 5}}}
