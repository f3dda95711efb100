"""A task's history in GraphQL is a bounded page (TRACKING_GRAPHQL_MAX_HISTORY): the newest `last` changes, read
with at most `last` + 1 entries per task however long the history, `historyTruncated` saying when older ones were
left out; and a task's links, which nothing bounds, are metered against the cost budget as the answer meets
them. On a real MongoDB, over both paths (compiled and graphql-core)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from bson.int64 import Int64

from tests.conftest import TEST_DB
from tests.graphql_schema.test_graphql import rest_create
from tests.helpers import AUTH, gateway_app, lifespan_client
from tests.monitoring import CommandLog, monitored_store

LONG = 5_000
"""Changes of the attacker's task: a task a tool or a long-running job changes without end."""


def cursor(task_id: int, index: int) -> str:
    """A history entry's id: after every real resume token (they start with 82), in order of `index`."""
    return f"ff{task_id:08d}{index:08d}"


async def record_changes(raw_db, task_id: int, count: int) -> list[str]:
    """`count` changes of the task, as the history writer stores them; their cursors, oldest first."""
    at = datetime.now(UTC)
    entries = [
        {
            "_id": cursor(task_id, i),
            "task": Int64(task_id),
            "job": "j",
            "kind": "UPDATED",
            "fields": ["status"],
            "status": f"S{i}",
            "at": at,
        }
        for i in range(count)
    ]
    await raw_db.task_history.insert_many(entries)
    return [cursor(task_id, i) for i in range(count)]


def recorded(changes: list[dict]) -> list[str]:
    """The cursors of the changes this test recorded (the gateway's history writer records the creates too)."""
    return [change["cursor"] for change in changes if change["cursor"].startswith("ff")]


@pytest.fixture
async def clients(store, mongo_uri, tmp_path) -> AsyncIterator[tuple[CommandLog, httpx.AsyncClient, httpx.AsyncClient]]:
    """A monitored gateway answering on the compiled path, and one answering field by field."""
    async with monitored_store(mongo_uri, TEST_DB) as (monitored, log):
        compiled, _ = gateway_app(monitored, tmp_path / "a")
        generic, _ = gateway_app(monitored, tmp_path / "b", graphql_compiled=False)
        async with lifespan_client(compiled, AUTH) as fast, lifespan_client(generic, AUTH) as slow:
            yield log, fast, slow


async def ask(client: httpx.AsyncClient, query: str) -> dict:
    return (await client.post("/graphql", json={"query": query})).json()


async def test_a_history_is_its_newest_page_and_says_when_older_changes_were_left_out(clients, raw_db) -> None:
    log, compiled, generic = clients
    await rest_create(compiled, *({"id": task_id, "job-id": "j"} for task_id in (1, 2, 3)))
    long, short = await record_changes(raw_db, 1, 120), await record_changes(raw_db, 2, 3)
    query = '{ job(id: "j") { tasks { id history(last: 5) { cursor status } } } }'
    for client in (compiled, generic):
        async with log.recorded():
            tasks = (await ask(client, query))["data"]["job"]["tasks"]
        assert [recorded(task["history"]) for task in tasks] == [long[-5:], short, []]
        assert tasks[0]["history"][-1]["status"] == "S119"  # oldest first within the page, the newest last
        assert log.reads("task_history") == ["find", "aggregate"]  # the 120 changes stopped the find short
        [find] = [sent for sent in log.sent if sent.get("find") == "task_history"]
        assert find["limit"] == 3 * 5 + 1
        default = (await ask(client, '{ job(id: "j") { tasks { history { cursor } } } }'))["data"]["job"]["tasks"]
        assert recorded(default[0]["history"]) == long[-50:]  # TRACKING_GRAPHQL_MAX_HISTORY when not given
    both = '{ job(id: "j") { tasks { historyTruncated(last: 5) history(last: 5) { at } } } }'
    for client in (compiled, generic):
        async with log.recorded():
            truncated = await ask(client, both)
        assert [task["historyTruncated"] for task in truncated["data"]["job"]["tasks"]] == [True, False, False]
        assert log.reads("task_history") == ["find", "aggregate"]  # one page read for both fields
    single = await ask(generic, '{ taskHistory(id: "2", last: 2) { cursor } }')
    assert recorded(single["data"]["taskHistory"]) == short[-2:]


PAGE_BACK = """query($before: String) {
  taskHistory(id: "1", last: 50, before: $before) { cursor }
  task(id: "1") { historyTruncated(last: 50, before: $before) }
}"""


async def test_a_long_history_is_paged_back_with_before(clients, raw_db) -> None:
    """Each page before the first cursor of the one after it, until historyTruncated says there is no more: every
    change once, in order."""
    _, compiled, generic = clients
    await rest_create(compiled, {"id": 1, "job-id": "j"})
    changes = await record_changes(raw_db, 1, 120)
    pages: list[list[str]] = []
    before = None
    for _ in range(10):
        data = (await generic.post("/graphql", json={"query": PAGE_BACK, "variables": {"before": before}})).json()
        page = [change["cursor"] for change in data["data"]["taskHistory"]]
        pages.insert(0, page)
        if not data["data"]["task"]["historyTruncated"]:
            break
        before = page[0]
    assert recorded([{"cursor": c} for page in pages for c in page]) == changes
    assert [len(page) for page in pages][1:] == [50, 50]  # the oldest page holds the rest (and the create)
    older = f'{{ task(id: "1") {{ history(last: 3, before: "{changes[10]}") {{ cursor }} }} }}'
    for client in (compiled, generic):
        assert recorded((await ask(client, older))["data"]["task"]["history"]) == changes[7:10]


async def test_a_page_past_the_bound_is_refused_naming_the_setting(store, tmp_path) -> None:
    app, _ = gateway_app(store, tmp_path, graphql_max_history=3)
    async with lifespan_client(app, AUTH) as client:
        await rest_create(client, {"id": 1, "job-id": "j"})
        for query in ('{ task(id: "1") { history(last: 4) { at } } }', '{ taskHistory(id: "1", last: 4) { at } }'):
            body = await ask(client, query)
            [error] = body["errors"]
            assert "last: at most 3 (TRACKING_GRAPHQL_MAX_HISTORY)" in error["message"]
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
        body = await ask(client, '{ task(id: "1") { history(last: 0) { at } } }')
        assert "last: must be at least 1" in body["errors"][0]["message"]


async def test_the_attackers_thirty_aliases_of_a_long_history_are_bounded_and_rest_keeps_answering(
    clients, raw_db
) -> None:
    """Thirty aliases (the alias limit) of taskHistory on a task of 5,000 changes: one page of 50 read once (the
    aliases share it), MongoDB asked for at most 51 entries; a REST GET sent meanwhile is answered."""
    log, client, _ = clients
    await rest_create(client, {"id": 7, "job-id": "j"})
    changes = await record_changes(raw_db, 7, LONG)
    hostile = (
        "{ "
        + " ".join(f'a{i}: taskHistory(id: "7") {{ cursor at kind changedFields status }}' for i in range(30))
        + " }"
    )
    async with log.recorded():
        started = time.perf_counter()
        answer, rest = await asyncio.gather(
            client.post("/graphql", json={"query": hostile}), client.get("/tracking/task/7")
        )
        took = time.perf_counter() - started
    body = answer.json()
    assert rest.status_code == 200
    assert all(recorded(body["data"][f"a{i}"]) == changes[-50:] for i in range(30))
    assert body["extensions"]["cost"]["estimated"] == 30 * 50
    history_reads = [sent for sent in log.sent if "task_history" in (sent.get("find"), _looked_up(sent))]
    assert [sent.get("limit", _lookup_limit(sent)) for sent in history_reads] == [51, 51]
    assert took < 10, took  # a loaded machine; it read 102 entries (before: 150,000, for 10 s)
    asked_for_all = await ask(client, '{ taskHistory(id: "7", last: 5000) { at } }')
    assert "TRACKING_GRAPHQL_MAX_HISTORY" in asked_for_all["errors"][0]["message"]


def _looked_up(command: dict) -> str | None:
    return next((stage["$lookup"]["from"] for stage in command.get("pipeline", ()) if "$lookup" in stage), None)


def _lookup_limit(command: dict) -> int | None:
    lookups = [stage["$lookup"]["pipeline"] for stage in command.get("pipeline", ()) if "$lookup" in stage]
    return next((stage["$limit"] for pipeline in lookups for stage in pipeline if "$limit" in stage), None)


# ---- links ------------------------------------------------------------------------------------------------------

FAN_OUT = 300
"""Direct next tasks of task 1, written by a tool: past the estimate's figure of 10."""


async def fan_out(client: httpx.AsyncClient, raw_db) -> None:
    await rest_create(client, *({"id": task_id, "job-id": "w"} for task_id in range(1, FAN_OUT + 2)))
    nexts = [Int64(task_id) for task_id in range(2, FAN_OUT + 2)]
    await raw_db.tasks.update_one({"_id": Int64(1)}, {"$set": {"nexts": nexts}})
    await raw_db.tasks.update_many({"_id": {"$in": nexts}}, {"$set": {"previous": [Int64(1)]}})


@pytest.mark.parametrize("compiled", [True, False])
async def test_links_past_the_estimate_are_charged_and_refused_over_the_budget(
    store, raw_db, tmp_path, compiled
) -> None:
    """A task's links are estimated at 10 and metered: 300 of them cost 290 more (reported in
    extensions.cost.charged); over the budget the field is refused with COST_LIMIT_EXCEEDED, the rest answers."""
    app, _ = gateway_app(store, tmp_path, graphql_max_cost=400, graphql_compiled=compiled)
    async with lifespan_client(app, AUTH) as client:
        await fan_out(client, raw_db)
        one = await ask(client, '{ task(id: "1") { id nexts { id } } }')
        assert len(one["data"]["task"]["nexts"]) == FAN_OUT
        assert one["extensions"]["cost"] == {"estimated": 11, "limit": 400, "charged": 11 + FAN_OUT - 10}
        two = await ask(client, '{ a: task(id: "1") { nexts { id } } b: task(id: "1") { nexts { id } } }')
        assert len(two["data"]["a"]["nexts"]) == FAN_OUT
        assert two["data"]["b"] is None
        [error] = two["errors"]
        assert error["path"] == ["b", "nexts"]
        assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
        assert "TRACKING_GRAPHQL_MAX_COST" in error["message"]
        assert "lists charged past their estimate" in error["message"]  # not the estimate, which was admitted
        nested = await ask(client, '{ task(id: "2") { previous { nexts { id } } } }')  # 10 x 10 estimated
        assert nested["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"


async def test_a_mutations_answer_is_charged_but_never_refused(store, raw_db, tmp_path) -> None:
    """A mutation's change is made before its answer is built: links past the budget in its answer are reported
    (extensions.cost.charged), not refused (an error would say the change failed)."""
    app, _ = gateway_app(store, tmp_path, graphql_max_cost=100)
    async with lifespan_client(app, AUTH) as client:
        await fan_out(client, raw_db)
        mutation = 'mutation { updateTask(id: "1", patch: { status: "RUNNING" }) { status nexts { id } } }'
        body = await ask(client, mutation)
    assert "errors" not in body, body["errors"]
    assert body["data"]["updateTask"]["status"] == "RUNNING"
    assert len(body["data"]["updateTask"]["nexts"]) == FAN_OUT
    assert body["extensions"]["cost"]["charged"] > 100
    assert (await raw_db.tasks.find_one({"_id": 1}))["status"] == "RUNNING"


async def test_a_jobs_edges_past_its_task_count_are_charged(store, raw_db, tmp_path) -> None:
    app, _ = gateway_app(store, tmp_path, graphql_max_cost=500)
    async with lifespan_client(app, AUTH) as client:
        await fan_out(client, raw_db)
        await raw_db.tasks.update_many({"_id": {"$gte": 2, "$lte": FAN_OUT}}, {"$set": {"nexts": [Int64(FAN_OUT + 1)]}})
        body = await ask(client, '{ job(id: "w") { edges { from } } }')  # 301 tasks, 599 links
        assert body["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
        assert body["errors"][0]["path"] == ["job", "edges"]
        fits = await ask(client, '{ job(id: "w") { taskCount } }')
        assert fits["data"]["job"]["taskCount"] == FAN_OUT + 1


@pytest.mark.parametrize("compiled", [True, False])
async def test_a_jobs_statuses_past_the_estimate_are_charged(store, tmp_path, compiled) -> None:
    """A status is any string: a job whose 30 tasks each have their own costs 20 statuses past the figure of 10."""
    app, _ = gateway_app(store, tmp_path, graphql_max_cost=25, graphql_compiled=compiled)
    async with lifespan_client(app, AUTH) as client:
        await rest_create(client, *({"id": i, "job-id": "s", "status": f"S{i}"} for i in range(1, 31)))
        body = await ask(client, '{ job(id: "s") { id statusCounts { status } } }')
        assert body["data"]["job"] is None
        assert body["errors"][0]["path"] == ["job", "statusCounts"]
        assert body["errors"][0]["extensions"] == {"code": "COST_LIMIT_EXCEEDED", "cost": 1 + 10 + 20, "limit": 25}
    app, _ = gateway_app(store, tmp_path / "b", graphql_max_cost=100, graphql_compiled=compiled)
    async with lifespan_client(app, AUTH) as client:
        body = await ask(client, '{ job(id: "s") { statusCounts { status count } } }')
        assert len(body["data"]["job"]["statusCounts"]) == 30
        assert body["extensions"]["cost"] == {"estimated": 11, "limit": 100, "charged": 31}
