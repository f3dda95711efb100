"""graphql_schema.websocket_messages: a message either reads as its protocol describes it or is refused with a
reason; never an exception, whatever JSON a client sends."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphql_schema.websocket_messages import message_problem

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
START = {"graphql-transport-ws": "subscribe", "graphql-ws": "start"}
END = {"graphql-transport-ws": "complete", "graphql-ws": "stop"}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_messages_the_protocols_describe_are_read(protocol: str) -> None:
    start = {"query": "subscription { taskEvents { kind } }", "variables": {"a": 1}, "operationName": "W"}
    for message in (
        {"type": "connection_init"},
        {"type": "connection_init", "payload": {"X-Auth-Token": "t"}},
        {"type": START[protocol], "id": "1", "payload": start},
        {"type": START[protocol], "id": "2", "payload": {"query": "{ jobs { totalCount } }", "variables": None}},
        {"type": END[protocol], "id": "1"},
        {"type": "something new"},
    ):
        assert message_problem(protocol, message) is None, message


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("message", "named"),
    [
        ([1, 2], "JSON object"),
        ({"type": 7}, "`type`"),
        ({"type": "START", "id": {"a": 1}, "payload": {"query": "{ x }"}}, "`id`"),
        ({"type": "START", "payload": {"query": "{ x }"}}, "`id`"),
        ({"type": "START", "id": 1, "payload": {"query": "{ x }"}}, "`id`"),
        ({"type": "START", "id": "1", "payload": "x"}, "`payload`"),
        ({"type": "START", "id": "1"}, "`payload`"),
        ({"type": "START", "id": "1", "payload": {"query": 123}}, "`payload.query`"),
        ({"type": "START", "id": "1", "payload": {}}, "`payload.query`"),
        ({"type": "START", "id": "1", "payload": {"query": "{ x }", "variables": "x"}}, "`payload.variables`"),
        (
            {"type": "START", "id": "1", "payload": {"query": "{ x }", "operationName": ["A"]}},
            "`payload.operationName`",
        ),
        ({"type": "START", "id": "1", "payload": {"query": "{ x }", "extensions": 1}}, "`payload.extensions`"),
        ({"type": "END", "id": None}, "`id`"),
        ({"type": "connection_init", "payload": "x"}, "`payload`"),
    ],
)
def test_a_message_the_handler_cannot_read_is_refused_naming_what_is_wrong(
    protocol: str, message: Any, named: str
) -> None:
    if isinstance(message, dict) and message.get("type") in ("START", "END"):
        message = {**message, "type": (START if message["type"] == "START" else END)[protocol]}
    problem = message_problem(protocol, message)
    assert problem is not None and named in problem, (message, problem)


KINDS = ["subscribe", "start", "complete", "stop", "connection_init", "ping"]


@given(protocol=st.sampled_from(PROTOCOLS), message=JSON, kind=st.sampled_from(KINDS))
def test_any_json_is_read_or_refused_without_an_exception(protocol: str, message: Any, kind: str) -> None:
    shapes = (
        message,
        {"type": kind, "id": message, "payload": message},
        {"type": kind, "id": "1", "payload": {"query": message}},
    )
    for candidate in shapes:
        problem = message_problem(protocol, candidate)
        assert problem is None or isinstance(problem, str)
