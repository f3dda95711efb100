"""A list of tasks asks MongoDB once per field, not once per task: `history`, `blockedBy` (direct and
transitive), `nexts`/`previous` and walks over a job's tasks are read in one query (or one per level) for the
whole list, on the compiled path and on graphql-core's, counted with PyMongo command monitoring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson.int64 import Int64

from tests.conftest import TEST_DB
from tests.helpers import AUTH, gateway_app, lifespan_client
from tests.monitoring import CommandLog, monitored_store

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
"""Changes dated within the history's retention (a TTL index deletes older ones, at any moment of a test)."""
JOB = "batched"
STATUSES = ["DONE", "RUNNING", "READY", "FAILED"]


def _task(task_id: int, size: int) -> dict[str, Any]:
    return {
        "_id": Int64(task_id),
        "job-id": JOB,
        "status": STATUSES[task_id % 4],
        "name": f"t{task_id}",
        "root": task_id == 1,
        "nexts": [Int64(n) for n in (task_id + 1, task_id + 3) if n <= size],
        "previous": [Int64(p) for p in (task_id - 1, task_id - 3) if p >= 1],
    }


def _entries(task_id: int) -> list[dict[str, Any]]:
    """task_id % 3 recorded changes (none for every third task)."""
    return [
        {
            "_id": f"{task_id:06d}{n:02d}",
            "task": Int64(task_id),
            "job": JOB,
            "kind": "CREATED" if n == 0 else "UPDATED",
            "fields": [] if n == 0 else ["status"],
            "at": T0 + timedelta(seconds=task_id, milliseconds=n),
        }
        for n in range(task_id % 3)
    ]


async def _seed(raw_db, size: int) -> None:
    await raw_db.tasks.insert_many([_task(i, size) for i in range(1, size + 1)])
    entries = [entry for i in range(1, size + 1) for entry in _entries(i)]
    await raw_db.task_history.insert_many(entries)


@pytest.fixture
async def gateways(
    store, mongo_uri, tmp_path
) -> AsyncIterator[tuple[CommandLog, httpx.AsyncClient, httpx.AsyncClient]]:
    """A gateway with the compiled path and one without, both on one store whose reads are logged; a budget
    that lets every task of a job walk (graphql_schema.cost refuses that by default)."""
    async with monitored_store(mongo_uri, TEST_DB) as (monitored, log):
        budget = 10**12
        compiled, _ = gateway_app(monitored, tmp_path / "a", graphql_max_cost=budget)
        generic, _ = gateway_app(monitored, tmp_path / "b", graphql_compiled=False, graphql_max_cost=budget)
        async with lifespan_client(compiled, AUTH) as one, lifespan_client(generic, AUTH) as other:
            yield log, one, other


async def _reads(log: CommandLog, client: httpx.AsyncClient, query: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The answer's data and how many reads each collection got to answer it."""
    async with log.recorded():
        answer = await client.post("/graphql", json={"query": query})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body
    return body["data"], {"tasks": len(log.reads("tasks")), "task_history": len(log.reads("task_history"))}


HISTORY = f'{{ job(id: "{JOB}") {{ tasks {{ id history {{ at kind changedFields }} }} }} }}'
PLAIN = f'{{ job(id: "{JOB}") {{ tasks {{ id }} }} }}'
LINKS = (
    f'{{ job(id: "{JOB}") {{ tasks {{ id blockedBy {{ id }} tb: blockedBy(transitive: true) {{ id }} '
    "nexts { id status } previous { id } ancestors(maxDepth: 3) { id } descendants { id } } } }"
)


@pytest.mark.parametrize("size", [40, 160])
async def test_a_whole_jobs_history_is_one_query(gateways, raw_db, size) -> None:
    log, compiled, generic = gateways
    await _seed(raw_db, size)
    for client in (compiled, generic):
        _, plain = await _reads(log, client, PLAIN)
        data, reads = await _reads(log, client, HISTORY)
        assert reads == {"tasks": plain["tasks"], "task_history": 1}, reads
        tasks = data["job"]["tasks"]
        assert [task["id"] for task in tasks] == [str(i) for i in range(1, size + 1)]
        for task in tasks:
            expected = _entries(int(task["id"]))
            assert [change["kind"] for change in task["history"]] == [entry["kind"] for entry in expected]
            assert [change["changedFields"] for change in task["history"]] == [e["fields"] for e in expected]


async def test_walks_of_every_task_of_a_job_read_nothing_more(gateways, raw_db) -> None:
    """The job's tasks, read once, answer every task's links and walks: as many reads of tasks as the plain
    list, whatever the size of the job, and the same answer on both paths."""
    log, compiled, generic = gateways
    await _seed(raw_db, 60)
    answers = []
    for client in (compiled, generic):
        _, plain = await _reads(log, client, PLAIN)
        data, reads = await _reads(log, client, LINKS)
        assert reads["tasks"] == plain["tasks"], reads
        answers.append(data)
    assert answers[0] == answers[1]
    by_id = {task["id"]: task for task in answers[0]["job"]["tasks"]}
    # 8: previous 5 and 7; then, level by level, the earlier tasks that are not DONE (4 is DONE)
    assert [t["id"] for t in by_id["8"]["blockedBy"]] == ["5", "7"]
    assert [t["id"] for t in by_id["8"]["tb"]] == ["5", "7", "2", "6", "1", "3"]
    assert [t["id"] for t in by_id["58"]["descendants"]] == ["59", "60"]
    assert [t["id"] for t in by_id["5"]["ancestors"]] == ["2", "4", "1", "3"]


async def test_nested_lists_read_once_per_level_of_the_query(gateways, raw_db) -> None:
    """A task's descendants, each with its history, nexts and blocking tasks: one history query, and a fixed
    number of task reads however many descendants there are."""
    log, compiled, generic = gateways
    await _seed(raw_db, 120)
    query = '{ task(id: "1") { id descendants { id history { kind } nexts { id blockedBy { id } } } } }'
    answers = []
    for client in (compiled, generic):
        data, reads = await _reads(log, client, query)
        assert reads["task_history"] == 1, reads
        assert reads["tasks"] <= 3, reads  # the task, its walk (one aggregation), nothing per descendant
        answers.append(data)
    assert answers[0] == answers[1]
    assert len(answers[0]["task"]["descendants"]) == 119


async def test_walks_from_tasks_read_elsewhere_go_level_by_level(gateways, raw_db) -> None:
    """Walks from many tasks none of which this request read before: one query per level for all of them."""
    log, compiled, generic = gateways
    await _seed(raw_db, 30)
    query = '{ task(id: "1") { nexts { descendants(maxDepth: 2) { id } ancestors { id } } } }'
    answers = []
    for client in (compiled, generic):
        data, reads = await _reads(log, client, query)
        assert reads["tasks"] <= 6, reads
        answers.append(data)
    assert answers[0] == answers[1]
    two, four = answers[0]["task"]["nexts"]
    assert [t["id"] for t in two["descendants"]] == ["3", "5", "4", "6", "8"]
    assert [t["id"] for t in four["ancestors"]] == ["1", "3", "2"]


async def _answered_with_one(
    log: CommandLog, clients: tuple[httpx.AsyncClient, ...], query: str, marker: str
) -> list[dict[str, Any]]:
    """Each gateway's answer to `query`, asserting each sent one aggregation of tasks whose command holds
    `marker`, and that the answers are alike."""
    answers = []
    for client in clients:
        data, _ = await _reads(log, client, query)
        found = [sent for sent in log.sent if sent.get("aggregate") == "tasks" and marker in str(sent)]
        assert len(found) == 1, log.commands
        answers.append(data)
    assert all(answer == answers[0] for answer in answers)
    return answers


async def test_aliases_of_a_job_s_summary_share_one_aggregation_on_both_paths(gateways, raw_db) -> None:
    """Thirty aliases of one job's counts and summary: the compiled path resolves root fields at once, as
    graphql-core does, and both read the summary once through the request's DataLoader (its answers alike)."""
    log, compiled, generic = gateways
    await _seed(raw_db, 40)
    query = "{ " + " ".join(f'a{n}: job(id: "{JOB}") {{ taskCount summary {{ doneCount }} }}' for n in range(30)) + " }"
    answers = await _answered_with_one(log, (compiled, generic), query, "$group")
    assert answers[0]["a29"] == {"taskCount": 40, "summary": {"doneCount": 10}}


async def test_aliases_of_a_job_s_levels_and_pages_by_stage_read_its_links_once(gateways, raw_db) -> None:
    """Levels and pages by stage read every task's links and statuses: aliases of them (any depths) read them
    once per request, on both paths, and answer as one alias alone would."""
    log, compiled, generic = gateways
    await _seed(raw_db, 40)
    aliases = [f'l{n}: job(id: "{JOB}") {{ levels {{ depth count blockedCount }} }}' for n in range(10)]
    aliases += [
        f'p{n}: job(id: "{JOB}") {{ taskPage(first: 2, depth: {n % 4}) {{ edges {{ node {{ id }} }} }} }}'
        for n in range(10)
    ]
    query = "{ " + " ".join(aliases) + " }"
    answers = await _answered_with_one(log, (compiled, generic), query, "'statuses'")
    assert answers[0]["l9"] == answers[0]["l0"]
    assert answers[0]["p5"] == answers[0]["p1"]
    assert answers[0]["p0"]["taskPage"]["edges"] == [{"node": {"id": "1"}}]


async def test_errors_of_fields_sharing_one_failed_read_come_in_document_order(gateways, raw_db) -> None:
    """Aliases awaiting one read that fails (a cycle in the job's links) fail in whatever order their waits end:
    the answer lists their errors by their place in the document, the same on every run and on both paths."""
    _, compiled, generic = gateways
    cycle = [(1001, 1002), (1002, 1003), (1003, 1001)]
    await raw_db.tasks.insert_many(
        [
            {"_id": Int64(a), "job-id": "cyc", "nexts": [Int64(b)], "previous": [Int64(p) for p, n in cycle if n == a]}
            for a, b in cycle
        ]
    )
    query = (
        '{ c1: job(id: "cyc") { levels { depth } } c2: job(id: "cyc") { levels { count } } '
        'c3: job(id: "cyc") { taskPage(first: 2, depth: 0) { edges { node { id } } } } }'
    )
    bodies = set()
    for client in (compiled, generic, compiled, generic, compiled, generic):
        answer = await client.post("/graphql", json={"query": query})
        body = answer.json()
        assert [error["path"][0] for error in body["errors"]] == ["c1", "c2", "c3"], body
        bodies.add(answer.text)
    assert len(bodies) == 1, bodies
