"""GraphQL as clients nobody here wrote expect it, through HTTP and WebSocket on the real MongoDB: the
GraphQL-over-HTTP specification's media types, statuses and request errors, operations chosen by name, the
token refusal GraphQL clients read, introspection bounded, and both WebSocket protocols running every kind
of operation."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import get_introspection_query
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_schema.rules import INTROSPECTION_QUERY_DEPTH
from models.fanout import LIVE_HUBS
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client, served, subscribed

READ_TOKEN = "graphql-http-read-token"
MODERN = "application/graphql-response+json"
CREATE = 'mutation { createTasks(tasks: [{jobId: "j"}]) { id } }'


def gateway(store, tmp_path, **overrides):
    return gateway_app(store, tmp_path, read_tokens=READ_TOKEN, **overrides)


@pytest.fixture
async def http(store, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = gateway(store, tmp_path)
    async with lifespan_client(app, AUTH) as client:
        yield client


def assert_request_error(response: httpx.Response, status: int, code: str, *fragments: str) -> str:
    """A GraphQL-shaped refusal: errors[] with extensions.code, no data, never text/plain."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(("application/json", MODERN)), response.headers
    body = response.json()
    assert "data" not in body, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code, body
    for fragment in fragments:
        assert fragment in error["message"], body
    return str(error["message"])


# ---- methods -------------------------------------------------------------------------------------------------------


async def test_a_mutation_over_get_is_405_allowing_post(http, raw_db):
    response = await http.get("/graphql", params={"query": CREATE})
    assert_request_error(response, 405, "BAD_REQUEST", "mutations are not allowed when using GET", "POST")
    assert response.headers["allow"] == "POST"
    assert await raw_db.tasks.count_documents({}) == 0
    document = f"query Q {{ __typename }} {CREATE.replace('mutation', 'mutation M')}"
    unnamed = await http.get("/graphql", params={"query": document})
    assert_request_error(unnamed, 200, "OPERATION_RESOLUTION_FAILURE")  # several operations, none named: none runs
    chosen = await http.get("/graphql", params={"query": document, "operationName": "M"})
    assert_request_error(chosen, 405, "BAD_REQUEST", "POST")
    assert await raw_db.tasks.count_documents({}) == 0
    assert (await http.get("/graphql", params={"query": "{ __typename }"})).json() == {
        "data": {"__typename": "Query"},
        "extensions": {"cost": {"estimated": 0, "limit": 110 * 20_000}},
    }


async def test_get_variables_that_are_no_json_object_are_refused_naming_the_parameter(http):
    query = "query($id: ID!) { task(id: $id) { id } }"
    for variables, says in (
        ("{bad", "variables query parameter is not JSON"),
        ("[1]", "not a JSON object"),
        ('{"id": "1", "id": "2"}', "'id' appears more than once"),
    ):
        response = await http.get("/graphql", params={"query": query, "variables": variables})
        assert_request_error(response, 400, "BAD_REQUEST", says)
    good = await http.get("/graphql", params={"query": query, "variables": '{"id": "1"}'})
    assert good.json()["data"] == {"task": None}
    none = await http.get("/graphql", params={"query": "{ __typename }", "variables": "null"})  # as a POST's null
    assert none.json()["data"] == {"__typename": "Query"}


async def test_a_body_behind_a_utf8_byte_order_mark_is_read_as_rest_reads_it(http):
    """RFC 8259 lets a parser ignore a byte order mark; REST skipped it and GraphQL refused it."""
    body = b'\xef\xbb\xbf{"query": "{ __typename }"}'
    response = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}, response.text


async def test_a_get_parameter_given_twice_is_refused_naming_it(http):
    """Starlette keeps the last of two `query` parameters; a proxy or cache in front may have read the first."""
    for name, values in (("query", ["{ __typename }", "{ doneStatuses }"]), ("variables", ["{}", "{}"])):
        params = [("query", "{ __typename }")] if name != "query" else []
        response = await http.get("/graphql", params=params + [(name, value) for value in values])
        assert_request_error(response, 400, "BAD_REQUEST", f"the {name} query parameter is given 2 times")


# ---- request errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status", "fragment"),
    [
        (b'{"query":', "application/json", 400, "Unable to parse request body as JSON"),
        (b"NONSENSE", "application/json", 400, "Unable to parse request body as JSON"),
        (b'[{"query": "{ __typename }"}]', "application/json", 400, "Batching is not enabled"),
        (b'{"query": "{ __typename }", "variables": [7]}', "application/json", 400, "variables"),
        (b'{"query": 1}', "application/json", 400, "query"),
        (b"{ __typename }", "application/graphql", 415, "application/graphql"),
        (b'{"query": "{ __typename }"}', None, 415, "without Content-Type"),
        (b'{"query": "{ __typename }", "variables": {"v": ' + b"[" * 200 + b"]" * 200 + b"}}", None, 400, "NESTING"),
        (
            b'{"query": "{ doneStatuses }", "query": "mutation { deleteTask(id: \\"1\\") }"}',
            "application/json",
            400,
            "'query' appears more than once",
        ),
        (b'{"query": "{ __typename }", "variables": {"a": 1, "a": 2}}', "application/json", 400, "'a' appears"),
    ],
    ids=[
        "truncated",
        "nonsense",
        "batch",
        "variables list",
        "query number",
        "graphql body",
        "no type",
        "nested",
        "query twice",
        "variable twice",
    ],
)
@pytest.mark.parametrize("accept", ["application/json", MODERN, "*/*"])
async def test_request_errors_answer_errors_with_a_code(http, content, content_type, status, fragment, accept):
    headers = {"Accept": accept, **({"Content-Type": content_type} if content_type else {})}
    if fragment == "NESTING":
        headers["Content-Type"] = "application/json"
        fragment = "TRACKING_MAX_NESTING"
    response = await http.post("/graphql", content=content, headers=headers)
    assert_request_error(response, status, "BAD_REQUEST", fragment)
    assert response.headers["content-type"].startswith(MODERN if accept == MODERN else "application/json")


async def test_bodies_over_the_limit_answer_errors_with_a_code(store, tmp_path):
    app, _ = gateway(store, tmp_path, max_body_bytes=100)
    async with lifespan_client(app, AUTH) as client:
        body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 200}}).encode()
        declared = await client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
        assert_request_error(declared, 413, "BAD_REQUEST", "TRACKING_MAX_BODY_BYTES")

        async def chunks() -> AsyncIterator[bytes]:
            yield body

        streamed = await client.post(
            "/graphql", content=chunks(), headers={"Content-Type": "application/json", "Accept": MODERN}
        )
        assert_request_error(streamed, 413, "BAD_REQUEST", "TRACKING_MAX_BODY_BYTES")
        assert streamed.headers["content-type"].startswith(MODERN)
        rest = await client.post("/tracking/task", content=body, headers={"Content-Type": "application/json"})
        assert rest.status_code == 413 and rest.json()["code"] == 413  # REST keeps its Error body


# ---- media types and statuses --------------------------------------------------------------------------------------


async def post(http: httpx.AsyncClient, query: str, accept: str | None, **extra: object) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if accept is not None:
        headers["Accept"] = accept
    return await http.post("/graphql", content=json.dumps({"query": query, **extra}), headers=headers)


@pytest.mark.parametrize(
    ("query", "json_status", "modern_status", "code"),
    [
        ("{ __typename }", 200, 200, None),
        ('{ task(id: "x") { id } }', 200, 200, "BAD_USER_INPUT"),  # a field error: executed, data present
        ("{ nothing }", 200, 400, "GRAPHQL_VALIDATION_FAILED"),
        ("{", 200, 400, "GRAPHQL_PARSE_FAILED"),
        ("query($v: Int!) { __typename }", 200, 400, "GRAPHQL_VALIDATION_FAILED"),  # variable coercion
    ],
    ids=["ok", "field error", "validation", "parse", "variables"],
)
async def test_statuses_follow_the_media_type(http, query, json_status, modern_status, code):
    legacy = await post(http, query, "application/json")
    modern = await post(http, query, f"{MODERN}, application/json;q=0.9")
    assert (legacy.status_code, modern.status_code) == (json_status, modern_status), (legacy.text, modern.text)
    assert legacy.headers["content-type"] == "application/json"
    assert modern.headers["content-type"] == f"{MODERN}; charset=utf-8"
    assert legacy.json() == modern.json()
    body = modern.json()
    if code is None:
        assert "errors" not in body and body["data"]
    else:
        assert body["errors"][0]["extensions"]["code"] == code
        assert ("data" in body) == (modern_status == 200), body  # no data entry when execution never started


async def test_a_subscription_sent_over_http_is_refused_and_leaves_no_operation_open(http, caplog):
    """Refused before the hooks that hold state across execution (the cost meter, the deadline) start: once they
    had, each such request left its operation open until the garbage collector closed it in another context,
    which logged a ValueError traceback at ERROR ("Task exception was never retrieved")."""
    with caplog.at_level(logging.ERROR):
        for accept in ('multipart/mixed;subscriptionSpec="1.0", application/json', "application/json"):
            response = await post(http, "subscription { taskEvents { kind } }", accept)
            assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST", response.text
            assert "not over HTTP" in response.text
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0)  # the finalizers the collector scheduled run
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),  # what clients without Accept always got: they notice nothing
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("application/json", "application/json"),
        (MODERN, MODERN),
        (f"application/json, {MODERN}", "application/json"),
        (f"application/json;q=0.5, {MODERN}", MODERN),
        (f"{MODERN}, */*", MODERN),
        ("application/json;q=0, */*", MODERN),
    ],
)
async def test_accept_chooses_the_media_type(http, accept, expected):
    http.headers.pop("accept", None)
    response = await post(http, "{ __typename }", accept)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == expected


async def test_nothing_acceptable_is_406(http):
    response = await post(http, "{ __typename }", "text/plain")
    assert_request_error(response, 406, "BAD_REQUEST", "application/graphql-response+json")


# ---- which operation runs ------------------------------------------------------------------------------------------


async def test_several_operations_without_a_name_run_none(http, raw_db):
    document = f"{CREATE.replace('mutation', 'mutation Create')} query Read {{ __typename }}"
    legacy = await post(http, document, "application/json")
    message = assert_request_error(legacy, 200, "OPERATION_RESOLUTION_FAILURE", "2 operations (Create, Read)")
    assert "operationName" in message
    assert_request_error(await post(http, document, MODERN), 400, "OPERATION_RESOLUTION_FAILURE")
    assert await raw_db.tasks.count_documents({}) == 0
    named = await post(http, document, MODERN, operationName="Read")
    assert named.json()["data"] == {"__typename": "Query"}
    assert (await post(http, document, MODERN, operationName="Create")).json()["data"]["createTasks"]
    unknown = await post(http, document, MODERN, operationName="Nope")
    assert_request_error(unknown, 400, "OPERATION_RESOLUTION_FAILURE", 'Unknown operation named "Nope"')
    assert_request_error(
        await post(http, document, "application/json", operationName="Nope"), 200, "OPERATION_RESOLUTION_FAILURE"
    )


# ---- tokens --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong"])
@pytest.mark.parametrize("accept", ["application/json", MODERN])
async def test_a_refused_token_answers_a_graphql_error(http, raw_db, token, accept):
    http.headers.pop("X-Auth-Token")
    headers = {"Content-Type": "application/json", "Accept": accept, **({"X-Auth-Token": token} if token else {})}
    response = await http.post("/graphql", content=json.dumps({"query": CREATE}), headers=headers)
    assert response.json() == {
        "errors": [{"message": "missing or unknown X-Auth-Token", "extensions": {"code": "FORBIDDEN"}}]
    }
    assert response.status_code == 403
    assert response.headers["content-type"].startswith(accept)
    assert await raw_db.tasks.count_documents({}) == 0
    rest = await http.get("/tracking/task/1", headers={"X-Auth-Token": token or ""})
    assert rest.json() == {"code": 403, "message": "missing or unknown X-Auth-Token"}  # one rule, two shapes


async def test_a_read_only_token_is_403_under_the_modern_media_type(http, raw_db):
    response = await post(http, CREATE, MODERN, variables={})
    assert response.status_code == 200  # the full-access token
    read_only = await http.post(
        "/graphql",
        content=json.dumps({"query": CREATE}),
        headers={"Content-Type": "application/json", "Accept": MODERN, "X-Auth-Token": READ_TOKEN},
    )
    assert_request_error(read_only, 403, "FORBIDDEN", "TRACKING_READ_TOKENS")
    assert await raw_db.tasks.count_documents({}) == 1


# ---- introspection -------------------------------------------------------------------------------------------------


def introspection_of_depth(depth: int) -> str:
    """`__schema { types { fields { args { type { ofType { … name } } } } } }`, its deepest field at `depth`."""
    nested = "name"
    for _ in range(depth - 5):
        nested = f"ofType {{ {nested} }}"
    return f"{{ __schema {{ types {{ fields {{ args {{ type {{ {nested} }} }} }} }} }} }}"


@pytest.mark.parametrize("max_depth", [4, 12, 20])
async def test_introspection_is_bounded_and_graphiqls_query_still_answers(store, tmp_path, max_depth):
    app, _ = gateway(store, tmp_path, graphql_max_depth=max_depth)
    bound = max(max_depth, INTROSPECTION_QUERY_DEPTH)
    async with lifespan_client(app, AUTH) as client:
        # GraphiQL 3's (graphql-js 16's getIntrospectionQuery, as graphql-core gives it) is 14 deep.
        standard = await post(client, get_introspection_query(descriptions=True), MODERN)
        assert standard.status_code == 200 and "errors" not in standard.json(), standard.text
        assert standard.json()["data"]["__schema"]["queryType"]["name"] == "Query"
        assert (await post(client, introspection_of_depth(bound), MODERN)).status_code == 200
        too_deep = await post(client, introspection_of_depth(bound + 1), MODERN)
        assert_request_error(
            too_deep, 400, "GRAPHQL_VALIDATION_FAILED", f"exceeds maximum introspection depth of {bound}"
        )


async def test_one_schema_per_operation_however_it_is_aliased(http):
    """`__schema` costs 1 in the estimate (it reads no data), yet each alias is the whole schema computed again:
    thirty of them, within the alias bound, held the event loop over a second for one request."""
    whole = "{ types { name fields { name args { name } type { name ofType { name } } } } }"
    aliased = "{ " + " ".join(f"s{i}: __schema {whole}" for i in range(30)) + " }"
    refused = await post(http, aliased, MODERN)
    assert_request_error(refused, 400, "GRAPHQL_VALIDATION_FAILED", "selects __schema 30 times")
    through_a_fragment = await post(http, "{ __schema { queryType { name } } ...F } fragment F on Query { a: __schema"
                                          " { queryType { name } } }", MODERN)  # fmt: skip
    assert_request_error(through_a_fragment, 400, "GRAPHQL_VALIDATION_FAILED", "selects __schema 2 times")
    merged = await post(http, "{ __schema { queryType { name } } __schema { queryType { name } } }", MODERN)
    assert merged.status_code == 200 and merged.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_the_standard_introspection_query_is_as_deep_as_the_bound_assumes(http):
    assert INTROSPECTION_QUERY_DEPTH == 14
    assert (await post(http, introspection_of_depth(14), MODERN)).status_code == 200
    assert (await post(http, introspection_of_depth(15), MODERN)).status_code == 400
    fragments = get_introspection_query(descriptions=True).split("fragment TypeRef")[1]
    assert fragments.count("ofType") == 9  # __schema types fields args type + 9 ofType = 14


# ---- WebSocket -----------------------------------------------------------------------------------------------------


@pytest.fixture
async def live(store, tmp_path) -> AsyncIterator[int]:
    app, settings = gateway(store, tmp_path)
    async with served(app, settings) as port:
        yield port


async def opened(port: int, protocol: str):
    ws = await connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol(protocol)])
    await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    return ws


async def answers(ws, operation_id: str) -> list[dict]:
    """Every message of one operation, up to its `complete` or `error`."""
    received = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message.get("id") != operation_id:
            continue
        received.append(message)
        if message["type"] in ("complete", "error"):
            return received


START = {"graphql-transport-ws": "subscribe", "graphql-ws": "start"}


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_queries_and_mutations_run_over_either_websocket_protocol(live, raw_db, protocol):
    data = "next" if protocol == "graphql-transport-ws" else "data"
    async with await opened(live, protocol) as ws:
        await ws.send(json.dumps({"id": "m", "type": START[protocol], "payload": {"query": CREATE}}))
        created = await answers(ws, "m")
        assert [m["type"] for m in created] == [data, "complete"], created
        assert created[0]["payload"]["data"]["createTasks"][0]["id"]
        query = {"query": "query Q { __typename }", "operationName": "Q"}
        await ws.send(json.dumps({"id": "q", "type": START[protocol], "payload": query}))
        read = await answers(ws, "q")
        assert read[0]["payload"]["data"] == {"__typename": "Query"}
    assert await raw_db.tasks.count_documents({}) == 1


async def test_subscriptions_still_stream_over_graphql_ws(live, raw_db):
    async with await opened(live, "graphql-ws") as ws, httpx.AsyncClient(headers=AUTH) as rest:
        subscription = {"query": "subscription { taskEvents { kind taskId } }"}
        async with subscribed():
            await ws.send(json.dumps({"id": "s", "type": "start", "payload": subscription}))
        await rest.post(f"http://127.0.0.1:{live}/tracking/task", json={"tasks": [{"id": 5}]})
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message == {
            "type": "data",
            "id": "s",
            "payload": {"data": {"taskEvents": {"kind": "CREATED", "taskId": "5"}}},
        }
        await ws.send(json.dumps({"id": "s", "type": "stop"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "complete", "id": "s"}


async def no_subscription_open() -> bool:
    return not any(hub.subscribers() for hub in list(LIVE_HUBS))


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_client_gone_while_its_answers_are_sent_is_no_server_error(live, raw_db, caplog, protocol):
    """A peer that drops its connection while changes stream to it (a closed laptop, a killed tab) ends its
    operations with the connection; the send that finds it gone was logged at ERROR with three tracebacks
    ("Exception in worker task"), once per such client, as if the gateway had failed."""
    subscription = {"query": "subscription { taskEvents { kind taskId } }"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live}", headers=AUTH) as rest:
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                ws = await opened(live, protocol)
                async with subscribed():
                    await ws.send(json.dumps({"id": "s", "type": START[protocol], "payload": subscription}))
                created = [rest.post("/tracking/task", json={"tasks": [{"job-id": "gone"}]}) for _ in range(20)]
                writes = asyncio.gather(*created)
                json.loads(await asyncio.wait_for(ws.recv(), 10))  # the events are flowing
                ws.transport.abort()  # gone, without a close frame, while the changes go on
                await writes
                await eventually(no_subscription_open, what="the gone client's subscription ended")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"query": "query Q { __typename }", "operationName": "Nope"}, 'Unknown operation named "Nope"'),
        ({"query": "query A { __typename } query B { __typename }"}, "name the one to run with operationName"),
    ],
    ids=["unknown name", "several unnamed"],
)
async def test_an_operation_that_cannot_be_determined_is_a_coded_client_error(
    live, caplog, protocol, payload, fragment
):
    async with await opened(live, protocol) as ws:
        with caplog.at_level(logging.ERROR):
            await ws.send(json.dumps({"id": "1", "type": START[protocol], "payload": payload}))
            (error,) = await answers(ws, "1")
        assert error["type"] == "error"
        (detail,) = error["payload"] if isinstance(error["payload"], list) else [error["payload"]]
        assert detail["extensions"]["code"] == "OPERATION_RESOLUTION_FAILURE", detail
        assert fragment in detail["message"]
        # The connection stays usable.
        await ws.send(json.dumps({"id": "2", "type": START[protocol], "payload": {"query": "{ __typename }"}}))
        assert (await answers(ws, "2"))[0]["payload"]["data"] == {"__typename": "Query"}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text
