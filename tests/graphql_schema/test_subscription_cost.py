"""What one caller's subscriptions cost per event is bounded: a selection over TRACKING_GRAPHQL_MAX_EVENT_COST is
refused when it subscribes (COST_LIMIT_EXCEEDED naming the setting), and a caller holds at most
TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER distinct selections (TOO_MANY_SUBSCRIPTIONS naming it), however many
subscriptions share them. On a real MongoDB, through the gateway's WebSocket, as a dashboard (or an attacker with
a read-only token) sees it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
from bson.int64 import Int64
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from models import GraphStore, defaults
from tests.graphql_schema.test_graphql_cost import ROOT, cost
from tests.helpers import AUTH, eventually, gateway_app, live_subscriptions, live_view_documents, served, subscribed
from tests.models.test_fanout import Inbox, code_of, complete, connection, subscribe

READER = "subcost-read-token"
STAR = "star"
STAR_NEXTS = 3000
SELECTIONS_SETTING = "TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER"
EVENT_COST_SETTING = "TRACKING_GRAPHQL_MAX_EVENT_COST"


def attack(n: int) -> str:
    """The reviewer's subscription, made distinct by an alias: each event of the star job reads the root's
    thousands of next tasks again for it."""
    return (
        f'subscription($after: String) {{ taskEvents(jobId: "{STAR}", after: $after) '
        f"{{ t{n}: task {{ previous {{ nexts {{ id }} }} }} }} }}"
    )


async def cursor_now(port: int) -> str:
    """A cursor for this moment: subscribed after it, a subscription gets the changes made from now on only, not
    those of the job's creation the gateway may still be reading."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60) as http:
        answer = await http.post("/graphql", json={"query": "{ eventCursor }"})
    return str(answer.json()["data"]["eventCursor"])


async def star_job(raw_db: Any) -> None:
    """A job whose root has STAR_NEXTS next tasks, each with the root as its only previous task (written as ops
    tools write it: straight into the tasks collection)."""
    leaves = range(2, 2 + STAR_NEXTS)
    root = {"_id": Int64(1), "job-id": STAR, "nexts": [Int64(n) for n in leaves], "previous": []}
    others = [{"_id": Int64(n), "job-id": STAR, "nexts": [], "previous": [Int64(1)]} for n in leaves]
    await raw_db.tasks.insert_many([root, *others])


def caller_refusals() -> float:
    """Subscriptions the gateways of this process refused by a caller's bound (/metrics)."""
    return REGISTRY.get_sample_value("tracking_subscriptions_refused_total", {"bound": "caller"}) or 0.0


async def slowest_answer(http: httpx.AsyncClient, stop: asyncio.Event) -> float:
    """The longest /healthz or REST GET took until `stop`, each answered 200."""
    slowest = 0.0
    while not stop.is_set():
        for path in ("/healthz", "/tracking/task/2"):
            started = time.monotonic()
            answer = await http.get(path)
            slowest = max(slowest, time.monotonic() - started)
            assert answer.status_code == 200, (path, answer.text)
        await asyncio.sleep(0.02)
    return slowest


async def test_alias_varied_subscriptions_past_the_bound_are_refused_and_the_gateway_keeps_answering(
    store: GraphStore, raw_db: Any, tmp_path: Any
) -> None:
    """The reviewer's attack: a read-only token opens 100 subscriptions on 2 connections, each a differently
    aliased selection over the star job. The first TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER are served, the
    others refused naming it; an update of one task is fanned out to those while /healthz and REST answer
    promptly, each event's answer refusing the root's thousands of next tasks (past the per-event budget) and
    the subscriptions going on; completing one makes room for another selection, the others untouched."""
    await star_job(raw_db)
    bound = defaults.SUBSCRIPTION_SELECTIONS_PER_CALLER
    app, settings = gateway_app(store, tmp_path, read_tokens=READER)
    async with (
        served(app, settings) as port,
        AsyncExitStack() as stack,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60) as rest,
    ):
        sockets = [await stack.enter_async_context(connection(port, READER)) for _ in range(2)]
        inboxes = [Inbox(ws) for ws in sockets]
        ops = {str(n): inboxes[n % 2] for n in range(100)}

        def refused() -> list[str]:
            return [op for op, inbox in ops.items() if inbox.errors[op]]

        async def all_answered() -> bool:
            return len(refused()) == 100 - bound

        after = await cursor_now(port)
        refused_before = caller_refusals()
        async with subscribed(bound):
            for n in range(100):
                await subscribe(sockets[n % 2], str(n), None, after, query=attack(n))
            await eventually(all_answered, what="every subscription past the bound refused")
        for op in refused():
            error = ops[op].errors[op][0]
            assert code_of(ops[op].errors[op]) == "TOO_MANY_SUBSCRIPTIONS", error
            assert SELECTIONS_SETTING in error["message"] and f"at most {bound}" in error["message"], error
        served_ops = sorted(set(ops) - set(refused()), key=int)
        assert len(served_ops) == bound
        assert caller_refusals() - refused_before == 100 - bound  # on /metrics, as refused by a caller's bound

        stop = asyncio.Event()
        probing = asyncio.create_task(slowest_answer(rest, stop))
        await raw_db.tasks.update_one({"_id": Int64(2)}, {"$set": {"status": "RUNNING"}})

        async def fanned_out() -> bool:
            return all(ops[op].errors[op] for op in served_ops)

        await eventually(fanned_out, timeout=60, what="the update delivered to every served subscription")
        stop.set()
        slowest = await probing
        # A hundred such selections held the event loop for seconds; what one caller can open now is bounded.
        assert slowest < 2.0, f"a /healthz or REST GET took {slowest:.2f}s while the update was fanned out"
        for op in served_ops:
            # The root's thousands of next tasks are past the estimate's figure and over the per-event budget:
            # that field is answered with the refusal in the event's payload, before they are read.
            [error] = ops[op].errors[op]
            assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED", error
            assert error["extensions"]["limit"] == defaults.MAX_EVENT_COST < error["extensions"]["cost"], error
            assert EVENT_COST_SETTING in error["message"], error
            assert error["path"] == ["taskEvents", f"t{op}", "previous", 0, "nexts"], error
            assert op not in ops[op].completed

        await complete(sockets[int(served_ops[0]) % 2], served_ops[0])  # released: room for one more selection
        async with subscribed(1):
            await subscribe(sockets[0], "fresh", None, after, query=attack(1000))
        await raw_db.tasks.update_one({"_id": Int64(3)}, {"$set": {"status": "RUNNING"}})
        still_served = [*served_ops[1:], "fresh"]

        async def served_again() -> bool:
            return all(len(ops.get(op, inboxes[0]).errors[op]) >= (1 if op == "fresh" else 2) for op in still_served)

        await eventually(served_again, timeout=60, what="the other subscriptions and the new one served")
        assert inboxes[0].errors["fresh"][0]["path"] == ["taskEvents", "t1000", "previous", 0, "nexts"]
        for inbox in inboxes:
            await inbox.stop()


async def test_a_heavy_selection_is_refused_when_it_subscribes_naming_the_per_event_budget(
    store: GraphStore, raw_db: Any, tmp_path: Any
) -> None:
    """Each event of a selection walking a task's descendants may read the traversal bound's tasks: refused at
    once, COST_LIMIT_EXCEEDED with its estimate and the budget, the connection and its other subscriptions
    untouched. The live view's subscription (ui/queries.js) and the reference's are served under the defaults."""
    app, settings = gateway_app(store, tmp_path, read_tokens=READER)
    heavy = 'subscription { taskEvents(jobId: "j") { task { descendants { id history { at } } } } }'
    reference = (
        "subscription($job: String, $after: String) {\n"
        "  taskEvents(jobId: $job, after: $after) { kind taskId cursor at changedFields task { status } }\n}"
    )
    async with served(app, settings) as port, connection(port, READER) as ws:
        inbox = Inbox(ws)
        async with subscribed(2):
            await ws.send(json.dumps({"id": "heavy", "type": "subscribe", "payload": {"query": heavy}}))
            payload = {"query": live_view_documents()["EVENTS"], "variables": {"job": "j"}}
            await ws.send(json.dumps({"id": "live", "type": "subscribe", "payload": payload}))
            payload = {"query": reference, "variables": {"job": "j"}}
            await ws.send(json.dumps({"id": "reference", "type": "subscribe", "payload": payload}))
        await eventually(lambda: _has_error(inbox, "heavy"), what="the heavy selection refused")
        [error] = inbox.errors["heavy"]
        assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED", error
        assert error["extensions"]["limit"] == defaults.MAX_EVENT_COST
        assert error["extensions"]["cost"] > defaults.MAX_EVENT_COST
        assert EVENT_COST_SETTING in error["message"], error
        await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "j", "nexts": [], "previous": []})

        async def both_served() -> bool:
            return bool(inbox.events["live"]) and bool(inbox.events["reference"])

        await eventually(both_served, what="the live view's and the reference's subscriptions served")
        assert inbox.events["live"][0]["task"]["id"] == "1"
        assert not inbox.errors["live"] and not inbox.errors["reference"]
        await inbox.stop()


async def _has_error(inbox: Inbox, op: str) -> bool:
    return bool(inbox.errors[op])


async def test_the_per_event_budget_is_a_setting(store: GraphStore, tmp_path: Any) -> None:
    """A gateway with a per-event budget of 2 serves the live view's subscription (a task's own fields: 2) and
    refuses one that adds a task's next tasks (10 more, estimated), naming the setting and the figures."""
    app, settings = gateway_app(store, tmp_path, graphql_max_event_cost=2)
    nexts = 'subscription { taskEvents(jobId: "j") { task { id nexts { id } } } }'
    async with served(app, settings) as port, connection(port) as ws:
        inbox = Inbox(ws)
        async with subscribed(1):
            payload = {"query": live_view_documents()["EVENTS"], "variables": {"job": "j"}}
            await ws.send(json.dumps({"id": "live", "type": "subscribe", "payload": payload}))
            await ws.send(json.dumps({"id": "nexts", "type": "subscribe", "payload": {"query": nexts}}))
        await eventually(lambda: _has_error(inbox, "nexts"), what="the selection over the budget refused")
        [error] = inbox.errors["nexts"]
        assert error["extensions"] == {"code": "COST_LIMIT_EXCEEDED", "cost": 12, "limit": 2}, error
        assert EVENT_COST_SETTING in error["message"]
        assert not inbox.errors["live"]
        await inbox.stop()


async def test_a_thousand_identical_subscriptions_of_one_token_share_one_selection(
    store: GraphStore, raw_db: Any, tmp_path: Any
) -> None:
    """A fleet of dashboards on one read-only token, 1,000 subscriptions of the live view's query on 10
    connections over many jobs: one selection (jobId and after choose events, not payloads), all accepted, each
    served its job's event."""
    app, settings = gateway_app(store, tmp_path, read_tokens=READER)
    query = live_view_documents()["EVENTS"]
    async with served(app, settings) as port, AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connection(port, READER)) for _ in range(10)]
        inboxes = [Inbox(ws) for ws in sockets]
        before = live_subscriptions()
        async with subscribed(1000):
            for n in range(1000):
                variables = {"job": f"fleet-{n % 20}"}
                message = {"id": str(n), "type": "subscribe", "payload": {"query": query, "variables": variables}}
                await sockets[n % 10].send(json.dumps(message))
        assert live_subscriptions() == before + 1000
        await raw_db.tasks.insert_many(
            [{"_id": Int64(job + 1), "job-id": f"fleet-{job}", "nexts": [], "previous": []} for job in range(20)]
        )

        async def delivered() -> bool:
            return all(inboxes[n % 10].events[str(n)] for n in range(1000))

        await eventually(delivered, timeout=120, what="every subscription's event")
        for n in range(1000):
            inbox = inboxes[n % 10]
            assert not inbox.errors[str(n)]
            assert [event["taskId"] for event in inbox.events[str(n)]] == [str(n % 20 + 1)]
        for inbox in inboxes:
            await inbox.stop()


async def test_an_event_s_answer_past_its_estimate_is_metered_against_the_per_event_budget(
    store: GraphStore, raw_db: Any, tmp_path: Any
) -> None:
    """A task's links are estimated at 10: a task with 50 next tasks is still answered whole (within the
    per-event budget), one with 3,000 has its `nexts` refused in that event's payload, and the same
    subscription goes on with the next event."""
    await star_job(raw_db)
    wide = list(range(10_001, 10_051))
    await raw_db.tasks.insert_many(
        [{"_id": Int64(10_000), "job-id": STAR, "nexts": [Int64(n) for n in wide], "previous": []}]
        + [{"_id": Int64(n), "job-id": STAR, "nexts": [], "previous": [Int64(10_000)]} for n in wide]
    )
    app, settings = gateway_app(store, tmp_path)
    query = (
        f'subscription($after: String) {{ taskEvents(jobId: "{STAR}", after: $after) '
        "{ taskId task { nexts { id } } } }"
    )
    async with served(app, settings) as port, connection(port) as ws:
        inbox = Inbox(ws)
        after = await cursor_now(port)
        async with subscribed(1):
            await subscribe(ws, "1", None, after, query=query)
        await raw_db.tasks.update_one({"_id": Int64(1)}, {"$set": {"status": "RUNNING"}})
        await eventually(lambda: _has_error(inbox, "1"), what="the star's event")
        await raw_db.tasks.update_one({"_id": Int64(10_000)}, {"$set": {"status": "RUNNING"}})

        async def wide_served() -> bool:
            return bool(inbox.events["1"])

        await eventually(wide_served, what="the wide task's event")
        [error] = inbox.errors["1"]
        assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED" and error["path"] == ["taskEvents", "task", "nexts"]
        assert error["extensions"]["cost"] > defaults.MAX_EVENT_COST and EVENT_COST_SETTING in error["message"]
        [event] = inbox.events["1"]
        assert event["taskId"] == "10000"
        assert sorted(int(task["id"]) for task in event["task"]["nexts"]) == wide
        await inbox.stop()


async def test_the_older_graphql_ws_protocol_is_bounded_alike(store: GraphStore, tmp_path: Any) -> None:
    """Over graphql-ws too: a heavy selection is refused naming the per-event budget, and with room for one
    selection per caller, a second subscription of the same query is served and one of another is refused."""
    app, settings = gateway_app(store, tmp_path, subscription_selections_per_caller=1)
    heavy = 'subscription { taskEvents(jobId: "j") { task { descendants { id } } } }'
    light = "subscription($jobId: String) { taskEvents(jobId: $jobId) { kind taskId } }"
    other = "subscription($jobId: String) { taskEvents(jobId: $jobId) { taskId kind } }"
    async with (
        served(app, settings) as port,
        connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-ws")]) as ws,
    ):
        await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "connection_ack"

        async def start(op: str, query: str, job: str) -> None:
            payload = {"query": query, "variables": {"jobId": job}}
            await ws.send(json.dumps({"id": op, "type": "start", "payload": payload}))

        async def refusal_of(op: str) -> dict[str, Any]:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message.get("id") == op and message["type"] in ("error", "data"):
                    payload = message["payload"]
                    return dict(payload["errors"][0] if "errors" in payload else payload)

        await start("heavy", heavy, "j")
        refused = await refusal_of("heavy")
        assert refused["extensions"]["code"] == "COST_LIMIT_EXCEEDED" and EVENT_COST_SETTING in refused["message"]
        async with subscribed(2):
            await start("a", light, "j")
            await start("b", light, "k")  # another job, the same selection
        await start("c", other, "j")
        refused = await refusal_of("c")
        assert refused["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", refused
        assert SELECTIONS_SETTING in refused["message"]


def _docs_subscriptions() -> list[str]:
    """Every ```graphql block of the docs pages that is a subscription."""
    blocks = [
        block
        for page in sorted((ROOT / "docs").rglob("*.md"))
        for block in re.findall(r"```graphql\n(.*?)```", page.read_text(), re.DOTALL)
    ]
    return [block for block in blocks if block.lstrip().startswith("subscription")]


def test_the_docs_and_live_view_subscriptions_cost_a_small_part_of_the_per_event_budget() -> None:
    """The default per-event budget is well above what the subscriptions the gateway documents and its live
    view make cost: each is within a tenth of it."""
    documents = {f"docs {n}": block for n, block in enumerate(_docs_subscriptions())}
    documents["live view"] = live_view_documents()["EVENTS"]
    assert len(documents) >= 3, documents
    for name, document in documents.items():
        assert cost(document) * 10 <= defaults.MAX_EVENT_COST, name


async def test_a_selection_is_its_text_and_payload_variables_and_is_released_with_its_last_subscription(
    store: GraphStore, tmp_path: Any
) -> None:
    """With room for two selections: one query on two jobs and after a cursor is one selection, the same query
    with another value of a variable its payload uses is a second, another text is refused; it is accepted once
    every subscription of the first selection has ended (not before)."""
    app, settings = gateway_app(store, tmp_path, subscription_selections_per_caller=2)
    query = (
        "subscription($jobId: String, $after: String, $full: Boolean!) { taskEvents(jobId: $jobId, after: $after) "
        "{ taskId task { status name @include(if: $full) } } }"
    )
    other = 'subscription { taskEvents(jobId: "a") { kind } }'
    async with served(app, settings) as port, connection(port) as ws:
        inbox = Inbox(ws)
        after = await cursor_now(port)

        async def send(op: str, text: str, variables: dict[str, Any]) -> None:
            message = {"id": op, "type": "subscribe", "payload": {"query": text, "variables": variables}}
            await ws.send(json.dumps(message))

        async def refused(op: str) -> dict[str, Any]:
            await eventually(lambda: _has_error(inbox, op), what=f"{op} refused")
            [error] = inbox.errors.pop(op)
            assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS" and SELECTIONS_SETTING in error["message"]
            return dict(error)

        async with subscribed(4):
            await send("full-a", query, {"jobId": "a", "full": True})
            await send("full-b", query, {"jobId": "b", "full": True, "after": after})
            await send("short", query, {"jobId": "a", "full": False})
            await send("full-c", query, {"jobId": "c", "full": True})
        await send("other", other, {})
        await refused("other")
        await complete(ws, "full-a")
        await complete(ws, "full-b")
        await send("other-again", other, {})
        await refused("other-again")  # full-c still holds the first selection
        await complete(ws, "full-c")
        async with subscribed(1):
            await send("other-last", other, {})
        assert not inbox.errors["other-last"] and not inbox.errors["short"]
        await inbox.stop()
