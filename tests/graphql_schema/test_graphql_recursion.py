"""Every GraphQL error has a code, recursion included: documents shaped to make the parser, the validation
rules or the executor recurse (fragment chains, nested selections, inline fragments, list and input values,
variables) are answered with a coded error or their data, over HTTP and WebSocket, and the gateway answers
the next request as before. An unexpected exception before execution is coded and logged too."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import parse
from hypothesis import given
from hypothesis import strategies as st

from graphql_schema import nesting
from graphql_schema.nesting import nesting_problem
from models import defaults
from tests.graphql_schema.test_graphql_http import START, answers, opened
from tests.helpers import AUTH, gateway_app, served, task

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

TASK = 'task(id: "1")'


def fragment_chain(length: int, *, used: bool = True, inline_each: int = 0) -> str:
    """F0 spreads F1 spreads … F(length-1); each fragment's spread inside `inline_each` inline fragments."""
    head = f"query Deep {{ {TASK} {{ ...F0 }} }}" if used else "query Deep { __typename }"
    parts = [head]
    for i in range(length):
        inner = f"...F{i + 1}" if i < length - 1 else "id"
        parts.append(f"fragment F{i} on Task {{ " + "... on Task { " * inline_each + inner + " }" * inline_each + " }")
    return "\n".join(parts)


def doubling_chain(length: int) -> str:
    """Each fragment spreads the next twice: a short document of 2^length fields once spread."""
    parts = [f"{{ {TASK} {{ ...F0 }} }}"]
    for i in range(length):
        inner = f"...F{i + 1} ...F{i + 1}" if i < length - 1 else "id"
        parts.append(f"fragment F{i} on Task {{ {inner} }}")
    return "\n".join(parts)


def inline_tower(levels: int) -> str:
    return f"{{ {TASK} {{ " + "... on Task { " * levels + "id" + " }" * levels + " } }"


def nested_selections(levels: int) -> str:
    return f"{{ {TASK} {{ " + "nexts { " * levels + "id" + " }" * levels + " } }"


def nested_list_argument(levels: int) -> str:
    return "{ task(id: " + "[" * levels + '"1"' + "]" * levels + ") { id } }"


def nested_input_object(levels: int) -> str:
    return 'mutation { updateTask(id: "1", patch: ' + "{status: " * levels + '"x"' + "}" * levels + ") { id } }"


SHAPES = {
    "fragment chain of 300 (the report)": fragment_chain(300),
    "fragment chain of 2000": fragment_chain(2000),
    "unused fragment chain of 300": fragment_chain(300, used=False),
    "fragment chain just past the bound": fragment_chain(defaults.MAX_FRAGMENT_DEPTH + 1),
    "fragments each 150 inline fragments deep": fragment_chain(3, inline_each=150),
    "fragments each 60 inline fragments deep": fragment_chain(8, inline_each=60),
    "fragments each spreading the next twice, 30 deep": doubling_chain(30),
    "199 inline fragments": inline_tower(199),
    "1000 inline fragments": inline_tower(1000),
    "199 nested selections": nested_selections(199),
    "5000 nested selections": nested_selections(5000),
    "list argument 199 deep": nested_list_argument(199),
    "list argument 5000 deep": nested_list_argument(5000),
    "input object 199 deep": nested_input_object(199),
    "input object 5000 deep": nested_input_object(5000),
}


@pytest.fixture
async def live(store, tmp_path) -> AsyncIterator[int]:
    """The gateway behind uvicorn: the stack a request really runs on, whose depth the recursion adds to."""
    app, settings = gateway_app(store, tmp_path, graphql_max_tokens=100_000, max_body_bytes=1_000_000)
    await store.create_tasks([task(id=1, job_id="j")])
    async with served(app, settings) as port:
        yield port


async def post(port: int, query: str, variables: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(headers=AUTH, timeout=60) as http:
        body = {"query": query, **({"variables": variables} if variables is not None else {})}
        return await http.post(f"http://127.0.0.1:{port}/graphql", json=body)


async def assert_still_serving(port: int) -> None:
    response = await post(port, f"{{ {TASK} {{ id }} }}")
    assert response.json()["data"] == {"task": {"id": "1"}}


def assert_every_error_coded(body: dict) -> list[dict]:
    errors = body.get("errors") or []
    for error in errors:
        assert (error.get("extensions") or {}).get("code"), body
        assert "recursion" not in error["message"], error["message"][:300]
    return errors


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_deep_documents_are_answered_with_codes(live, caplog, shape):
    with caplog.at_level(logging.ERROR):
        response = await post(live, SHAPES[shape])
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    errors = assert_every_error_coded(body)
    assert errors or body.get("data"), body
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text[:2000]
    await assert_still_serving(live)


async def test_the_fragment_chain_of_the_report_names_the_bound(live):
    (error,) = assert_every_error_coded((await post(live, fragment_chain(300))).json())
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["message"] == (
        "'Deep' nests fragment spreads 300 deep (F0 -> F1 -> F2 -> … -> F298 -> F299), more than 32 "
        "(TRACKING_GRAPHQL_MAX_FRAGMENT_DEPTH)"
    )


async def test_nesting_through_fragments_is_bounded_like_the_parser_bounds_one_definition(live):
    (error,) = assert_every_error_coded((await post(live, fragment_chain(3, inline_each=150))).json())
    assert "nests selections" in error["message"] and "the 200 the GraphQL parser allows" in error["message"]


async def test_fragments_expanding_past_the_token_bound_are_refused_at_once(live):
    """2^30 fields in a 1.2 kB document: refused before any rule walks a spread, the event loop never stalled."""
    started = asyncio.get_running_loop().time()
    (error,) = assert_every_error_coded((await post(live, doubling_chain(30))).json())
    assert error["message"].startswith(f"'anonymous' holds {2**29 + 1} fields once its fragments are spread")
    assert "more than 100000 (TRACKING_GRAPHQL_MAX_TOKENS" in error["message"]
    assert asyncio.get_running_loop().time() - started < 10
    # A fragment used in many places within the bound runs as before.
    response = await post(live, doubling_chain(8))
    assert response.json()["data"] == {"task": {"id": "1"}}


async def test_a_chain_at_the_bound_runs(live):
    response = await post(live, fragment_chain(defaults.MAX_FRAGMENT_DEPTH))
    assert response.json()["data"] == {"task": {"id": "1"}}


async def test_the_bound_is_a_setting(store, tmp_path):
    app, settings = gateway_app(store, tmp_path, graphql_max_fragment_depth=3)
    await store.create_tasks([task(id=1)])
    async with served(app, settings) as port:
        assert (await post(port, fragment_chain(3))).json()["data"] == {"task": {"id": "1"}}
        (error,) = (await post(port, fragment_chain(4))).json()["errors"]
        assert "4 deep (F0 -> F1 -> F2 -> F3), more than 3 (TRACKING_GRAPHQL_MAX_FRAGMENT_DEPTH)" in error["message"]


@pytest.mark.parametrize("levels", [30, 130, 2000])
async def test_nested_lists_in_variables_are_answered_with_codes(live, levels):
    query = json.dumps("query Q($ids: [ID!]!) { tasks(ids: $ids) { id } }")
    body = f'{{"query": {query}, "variables": {{"ids": {"[" * levels}"1"{"]" * levels}}}}}'
    async with httpx.AsyncClient(headers={**AUTH, "Content-Type": "application/json"}) as http:
        response = await http.post(f"http://127.0.0.1:{live}/graphql", content=body)
    assert response.status_code in (200, 400), response.text[:300]
    assert_every_error_coded(response.json())
    await assert_still_serving(live)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_deep_documents_over_websocket_are_coded_and_the_connection_stays(live, protocol):
    async with await opened(live, protocol) as ws:
        for number, query in enumerate((fragment_chain(300), fragment_chain(3, inline_each=150), inline_tower(1000))):
            await ws.send(json.dumps({"id": str(number), "type": START[protocol], "payload": {"query": query}}))
            (error,) = await answers(ws, str(number))
            assert error["type"] == "error", error
            details = error["payload"] if isinstance(error["payload"], list) else [error["payload"]]
            assert all(detail["extensions"]["code"] for detail in details), details
        await ws.send(json.dumps({"id": "ok", "type": START[protocol], "payload": {"query": "{ __typename }"}}))
        assert (await answers(ws, "ok"))[0]["payload"]["data"] == {"__typename": "Query"}


def _broken(*_: object) -> None:
    raise RuntimeError("a bug before execution")


async def test_an_unexpected_exception_before_execution_is_coded_and_logged(live, caplog, monkeypatch):
    monkeypatch.setattr(nesting, "nesting_problem", _broken)
    with caplog.at_level(logging.ERROR, logger="gateway.graphql"):
        response = await post(live, "{ __typename }")
    assert response.json() == {
        "errors": [{"message": "internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]
    }
    (record,) = [record for record in caplog.records if record.name == "gateway.graphql"]
    assert "unhandled error in GraphQL request, before execution" in record.getMessage()
    assert record.exc_info and "a bug before execution" in str(record.exc_info[1])
    async with httpx.AsyncClient(headers={**AUTH, "Accept": "application/graphql-response+json"}) as http:
        modern = await http.post(f"http://127.0.0.1:{live}/graphql", json={"query": "{ __typename }"})
    assert modern.status_code == 500 and modern.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_an_unexpected_exception_over_websocket_is_coded(live, monkeypatch, protocol):
    monkeypatch.setattr(nesting, "nesting_problem", _broken)
    async with await opened(live, protocol) as ws:
        await ws.send(json.dumps({"id": "1", "type": START[protocol], "payload": {"query": "{ __typename }"}}))
        messages = await answers(ws, "1")
    payload = messages[0]["payload"]
    details = payload if isinstance(payload, list) else payload.get("errors", [payload])
    assert [detail["extensions"]["code"] for detail in details] == ["INTERNAL_SERVER_ERROR"], messages


# ---- the walk against a recursive model --------------------------------------------------------------------------

GRAPHS = st.dictionaries(st.integers(0, 7), st.lists(st.integers(0, 7), max_size=3), min_size=1, max_size=8).map(
    lambda spreads: {name: [s for s in targets if s in spreads and s > name] for name, targets in spreads.items()}
)
"""Fragments spreading only fragments of higher numbers: no cycle (cycles are the validation rules' to refuse)."""


def longest_chain(name: int, spreads: dict[int, list[int]]) -> int:
    """The plain recursive definition: the fragment, then the longest chain of what it spreads."""
    return 1 + max((longest_chain(spread, spreads) for spread in spreads[name]), default=0)


def expanded_fields(name: int, spreads: dict[int, list[int]]) -> int:
    """The plain recursive definition: the fragment's own field (`id`), then each spread expanded in place."""
    return 1 + sum(expanded_fields(spread, spreads) for spread in spreads[name])


@given(spreads=GRAPHS, bound=st.integers(1, 6), max_fields=st.integers(1, 40))
def test_the_iterative_walk_refuses_exactly_the_documents_past_the_bounds(spreads, bound, max_fields):
    document = "\n".join(
        f"fragment F{name} on Task {{ id {' '.join(f'...F{s}' for s in targets)} }}"
        for name, targets in spreads.items()
    )
    problem = nesting_problem(parse(document), bound, max_fields)
    too_long = max(longest_chain(name, spreads) for name in spreads) > bound
    too_large = max(expanded_fields(name, spreads) for name in spreads) > max_fields
    if too_long or too_large:
        assert problem is not None and problem.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
        assert "TRACKING_GRAPHQL_MAX_FRAGMENT_DEPTH" in problem.message or "fields once" in problem.message
    else:
        assert problem is None, problem
