"""Subscriptions of the same dashboard query share each event's execution and its encoded `next` payload: the
work per event grows with the distinct (selection, variables) payloads, not with the subscribers. Counted on
/metrics (executions and encodings), not timed; every subscriber still gets exactly its own frame."""

from __future__ import annotations

import json
import weakref
from contextlib import AsyncExitStack
from typing import Any

import httpx
from graphql import OperationDefinitionNode, parse
from hypothesis import given
from hypothesis import strategies as st

from graphql_schema import event_payloads
from graphql_schema.event_payloads import payload_variables
from models import GraphStore
from tests.helpers import AUTH, TOKEN, eventually, gateway_app, served, subscribed
from tests.models.test_fanout import Inbox, connection
from tests.models.test_job_scopes import SCOPE, seed

DASHBOARD = (
    "subscription Dash($jobId: String, $after: String, $full: Boolean!) { taskEvents(jobId: $jobId, after: $after)"
    " { kind taskId cursor task { status name @include(if: $full) } } }"
)
OTHER = "subscription($jobId: String) { taskEvents(jobId: $jobId) { kind taskId } }"


def counted(metrics: str, series: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def counts(rest: httpx.AsyncClient) -> dict[str, float]:
    metrics = (await rest.get("/metrics")).text
    return {
        f"{what}.{outcome}": counted(metrics, f'tracking_subscription_event_{what}_total{{outcome="{outcome}"}}')
        for what in ("executions", "encodings")
        for outcome in ("executed", "encoded", "shared")
    }


async def send(ws: Any, op: str, query: str, variables: dict[str, Any]) -> None:
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}}))


async def test_subscribers_of_one_query_share_each_event_s_execution_and_encoding(store: GraphStore, tmp_path):
    """14 subscriptions of one dashboard query on 3 connections (on the job or on every job, some after a
    cursor: those arguments choose events, not payloads) with two values of a variable the payload depends on,
    and one of another query: each event is executed and encoded once per distinct payload (3), and every
    subscriber gets its own frame (its id) with the payload it asked for."""
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        AsyncExitStack() as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
    ):
        cursor = (await rest.post("/graphql", json={"query": "{ eventCursor }"})).json()["data"]["eventCursor"]
        sockets = [await stack.enter_async_context(connection(port)) for _ in range(3)]
        inboxes = [Inbox(ws) for ws in sockets]
        wanted: dict[str, tuple[int, bool | None]] = {}
        async with subscribed(15):
            for n in range(14):
                variables = {"jobId": "dash" if n % 2 else None, "full": n < 10}
                if n % 3 == 0:
                    variables["after"] = cursor
                await send(sockets[n % 3], f"s{n}", DASHBOARD, variables)
                wanted[f"s{n}"] = (n % 3, n < 10)
            await send(sockets[0], "other", OTHER, {"jobId": "dash"})
            wanted["other"] = (0, None)
        before = await counts(rest)
        for number in (1, 2):
            answer = await rest.post("/tracking/task", json={"tasks": [{"id": number, "job-id": "dash"}]})
            assert answer.status_code == 200, answer.text

        async def delivered() -> bool:
            return all(len(inboxes[conn].events[op]) >= 2 for op, (conn, _) in wanted.items())

        await eventually(delivered, what="every subscriber's two events")
        after = await counts(rest)
        for inbox in inboxes:
            await inbox.stop()
    for op, (conn, full) in wanted.items():
        events = inboxes[conn].events[op]
        assert not inboxes[conn].errors[op], (op, inboxes[conn].errors[op])
        assert [event["taskId"] for event in events] == ["1", "2"], op
        for event in events:
            if full is None:
                assert set(event) == {"kind", "taskId"}
            else:
                expected = {"status": event["task"]["status"], **({"name": event["task"]["name"]} if full else {})}
                assert event["task"] == expected, (op, event)
    delta = {name: after[name] - before[name] for name in after}
    # Two events, three distinct payloads each (full, not full, the other query), fifteen subscribers.
    assert delta["executions.executed"] == 2 * 3, delta
    assert delta["executions.shared"] == 2 * 12, delta
    assert delta["encodings.encoded"] == 2 * 3, delta
    assert delta["encodings.shared"] == 2 * 12, delta


def operation_of(document: str) -> tuple[OperationDefinitionNode, list[Any]]:
    parsed = parse(document)
    operations = [node for node in parsed.definitions if isinstance(node, OperationDefinitionNode)]
    fragments = [node for node in parsed.definitions if not isinstance(node, OperationDefinitionNode)]
    return operations[0], fragments


NAMES = st.sampled_from(["a", "b", "c", "d"])


@given(root=st.sets(NAMES), inner=st.sets(NAMES), in_fragment=st.sets(NAMES), spread_at_root=st.booleans())
def test_a_payload_depends_on_every_variable_but_those_choosing_the_events(root, inner, in_fragment, spread_at_root):
    """Variables used in the subscription field's own arguments choose its events (not shared across values
    they do not change); those in its selection, its directives or fragments make the payload; a root selection
    that is not a plain field makes every variable count."""
    declared = ", ".join(f"${name}: Boolean" for name in sorted(root | inner | in_fragment)) or "$unused: Boolean"
    arguments = ", ".join(f"{name}: ${name}" for name in sorted(root)) or "x: 1"
    inner_fields = " ".join(f"f{name} @include(if: ${name})" for name in sorted(inner)) or "kind"
    fragment_fields = " ".join(f"g{name} @skip(if: ${name})" for name in sorted(in_fragment)) or "kind"
    field = f"taskEvents({arguments}) {{ {inner_fields} ...F }}"
    selection = f"... on Subscription {{ {field} }}" if spread_at_root else field
    document = f"subscription({declared}) {{ {selection} }} fragment F on TaskEvent {{ {fragment_fields} }}"
    operation, fragments = operation_of(document)
    expected = (root | inner | in_fragment) if spread_at_root else (inner | in_fragment)
    assert payload_variables(operation, fragments) == expected


def test_an_operation_s_payload_variables_are_remembered_by_identity_and_bounded(monkeypatch):
    """Found once per parsed operation: an entry left under a reused id (its operation gone, or another one) is
    not taken for a new operation's, and no more than OPERATIONS_KEPT operations are remembered."""
    monkeypatch.setattr(event_payloads, "OPERATIONS_KEPT", 2)
    monkeypatch.setattr(event_payloads, "_VARIABLES_OF", {})
    full, _ = operation_of("subscription($full: Boolean!) { taskEvents { kind @include(if: $full) } }")
    plain, _ = operation_of("subscription($jobId: String) { taskEvents(jobId: $jobId) { kind } }")
    remembered = event_payloads._VARIABLES_OF
    remembered[id(plain)] = (weakref.ref(full), frozenset({"full"}))  # as if plain's id had been full's
    assert event_payloads._payload_variables_of(plain, ()) == frozenset()
    assert event_payloads._payload_variables_of(full, ()) == {"full"}
    assert event_payloads._payload_variables_of(plain, ()) == frozenset()
    third, _ = operation_of("subscription($a: Boolean!) { taskEvents { kind @skip(if: $a) } }")
    assert event_payloads._payload_variables_of(third, ()) == {"a"}
    assert len(remembered) == 2 and id(third) in remembered


async def test_shared_answers_are_bounded_and_a_forgotten_one_is_executed_again(store, tmp_path, monkeypatch):
    """With room for two shared answers, three selections on three events: the fan-out keeps no more than two,
    and every subscriber still gets exactly its own payloads (those forgotten are executed again)."""
    monkeypatch.setattr(event_payloads, "SHARED_ANSWERS", 2)
    selections = ["kind taskId", "taskId task { status }", "cursor taskId"]
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        AsyncExitStack() as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
    ):
        sockets = [await stack.enter_async_context(connection(port)) for _ in range(2)]
        inboxes = [Inbox(ws) for ws in sockets]
        async with subscribed(6):
            for n in range(6):
                query = f'subscription {{ taskEvents(jobId: "b") {{ {selections[n % 3]} }} }}'
                await send(sockets[n % 2], str(n), query, {})
        before = await counts(rest)
        for number in (1, 2, 3):
            answer = await rest.post("/tracking/task", json={"tasks": [{"id": number, "job-id": "b"}]})
            assert answer.status_code == 200, answer.text

        async def delivered() -> bool:
            return all(len(inboxes[n % 2].events[str(n)]) >= 3 for n in range(6))

        await eventually(delivered, what="every subscriber's three events")
        after = await counts(rest)
        assert len(event_payloads._kept) <= 2
        for inbox in inboxes:
            await inbox.stop()
    for n in range(6):
        events = inboxes[n % 2].events[str(n)]
        assert [event["taskId"] for event in events] == ["1", "2", "3"]
        fields = {"kind", "taskId"} if n % 3 == 0 else {"taskId", "task"} if n % 3 == 1 else {"cursor", "taskId"}
        assert all(set(event) == fields for event in events), (n, events)
    executed = after["executions.executed"] - before["executions.executed"]
    shared = after["executions.shared"] - before["executions.shared"]
    assert executed + shared == 18 and executed >= 9, (executed, shared)


async def test_a_selection_that_reads_is_run_once_and_its_answer_shared(store, tmp_path):
    """A selection whose nested fields read MongoDB (a task's next tasks) runs once per event for all its
    subscribers, who all get its answer."""
    query = 'subscription { taskEvents(jobId: "n") { taskId task { nexts { id } } } }'
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        AsyncExitStack() as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
    ):
        sockets = [await stack.enter_async_context(connection(port)) for _ in range(2)]
        inboxes = [Inbox(ws) for ws in sockets]
        async with subscribed(4):
            for n in range(4):
                await send(sockets[n % 2], str(n), query, {})
        before = await counts(rest)
        created = {"tasks": [{"id": 1, "job-id": "n", "nexts": {"tasks": [{"id": 2, "job-id": "n"}]}}]}
        answer = await rest.post("/tracking/task", json=created)
        assert answer.status_code == 200, answer.text

        async def delivered() -> bool:
            return all(len(inboxes[n % 2].events[str(n)]) >= 2 for n in range(4))

        await eventually(delivered, what="every subscriber's two events")
        after = await counts(rest)
        for inbox in inboxes:
            await inbox.stop()
    for n in range(4):
        events = {event["taskId"]: event["task"] for event in inboxes[n % 2].events[str(n)]}
        assert events["1"] == {"nexts": [{"id": "2"}]}, (n, events)
    assert after["executions.executed"] - before["executions.executed"] == 2  # two events, one run each
    assert after["executions.shared"] - before["executions.shared"] == 2 * 3


async def test_callers_who_may_see_different_jobs_never_share_an_answer(store, raw_db, tmp_path):
    """Two subscribers with a token scoped to team-a- jobs and two with an unscoped one, on one query whose
    nested field reads (a task's next tasks): each audience's answer is run once and shared within it, and the
    scoped callers never see the next task outside their jobs that the others see."""
    await raw_db.tasks.insert_many(seed())
    scoped = await store.named_tokens().create("team-a", write=False, jobs=(SCOPE,))
    query = "subscription { taskEvents { taskId task { nexts { id } } } }"
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        AsyncExitStack() as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as rest,
    ):
        sockets = [await stack.enter_async_context(connection(port, token)) for token in (scoped, scoped, TOKEN)]
        inboxes = [Inbox(ws) for ws in sockets]
        subscribers = [(0, "a"), (1, "b"), (2, "c"), (2, "d")]  # two scoped, two unscoped
        async with subscribed(4):
            for conn, op in subscribers:
                await send(sockets[conn], op, query, {})
        before = await counts(rest)
        assert (await rest.put("/tracking/task/2", json={"status": "DONE"})).status_code == 200

        async def delivered() -> bool:
            return all(inboxes[conn].events[op] for conn, op in subscribers)

        await eventually(delivered, what="every subscriber's event")
        after = await counts(rest)
        for inbox in inboxes:
            await inbox.stop()
    seen = {op: inboxes[conn].events[op] for conn, op in subscribers}
    hidden = [{"taskId": "2", "task": {"nexts": []}}]
    shown = [{"taskId": "2", "task": {"nexts": [{"id": "3"}]}}]
    assert seen == {"a": hidden, "b": hidden, "c": shown, "d": shown}
    assert after["executions.executed"] - before["executions.executed"] == 2
    assert after["executions.shared"] - before["executions.shared"] == 2
