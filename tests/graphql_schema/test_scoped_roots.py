"""Job.roots as a caller limited to some jobs sees it, on the real MongoDB and on both GraphQL paths: the tasks
stored as roots, and the tasks none of whose previous tasks the caller may see (models.jobs.roots), so that a job
whose stored roots lie in another caller's jobs does not answer `roots: []`. A caller allowed every job still
gets the stored roots."""

from __future__ import annotations

from typing import Any

import pytest
from bson.int64 import Int64

from models import GraphStore
from models.connection import make_client
from tests.conftest import TEST_DB
from tests.graphql_schema.compiled_pair import compiled_count
from tests.helpers import AUTH, gateway_app, lifespan_client
from tests.models.test_job_scopes import TaskQueries

JOB = "a-7"
# (id, job, root, previous): 1 (b-7) -> 2 -> 3 -> 7; 2 -> 6 and 1 -> 6; 4 (a-8) -> 5.
TASKS: list[tuple[int, str, bool, list[int]]] = [
    (1, "b-7", True, []),
    (2, JOB, False, [1]),  # its one previous task is outside a-: a root to the scoped caller
    (3, JOB, False, [2]),
    (4, "a-8", True, []),
    (5, JOB, False, [4]),  # its previous task is of another job, but in the scope: no root
    (6, JOB, False, [2, 1]),  # one previous task seen: no root
    (7, JOB, True, [3]),  # stored as a root: a root to everyone
]
QUERIES = (
    f'{{ job(id: "{JOB}") {{ roots {{ id }} }} }}',
    f'{{ job(id: "{JOB}") {{ roots {{ id name }} tasks {{ id }} taskCount }} }}',
    f'{{ job(id: "{JOB}") {{ roots {{ id previous {{ id }} }} }} }}',
)


def stored(task_id: int, job: str, root: bool, previous: list[int]) -> dict[str, Any]:
    nexts = [other for other, _, _, before in TASKS if task_id in before]
    return {
        "_id": Int64(task_id),
        "job-id": job,
        "name": f"t{task_id}",
        "root": root,
        "nexts": list(map(Int64, nexts)),
        "previous": list(map(Int64, previous)),
    }


@pytest.fixture
async def gateways(store, raw_db, tmp_path):
    """Both paths, and the headers of a caller scoped to `a-` and of one scoped to job a-7 alone (tokens are
    loaded when a gateway starts)."""
    await raw_db.tasks.insert_many([stored(*task) for task in TASKS])
    tokens = store.named_tokens()
    scoped = {"X-Auth-Token": await tokens.create("team-a", write=False, jobs=("a-",))}
    narrow = {"X-Auth-Token": await tokens.create("job-a-7", write=False, jobs=(JOB,))}
    compiled, _ = gateway_app(store, tmp_path / "compiled")
    generic, _ = gateway_app(store, tmp_path / "generic", graphql_compiled=False)
    async with lifespan_client(compiled) as one, lifespan_client(generic) as other:
        yield (one, other), scoped, narrow


async def roots(http, query: str, headers: dict[str, str]) -> list[str]:
    answer = (await http.post("/graphql", json={"query": query}, headers=headers)).json()
    assert "errors" not in answer, answer
    return [task["id"] for task in answer["data"]["job"]["roots"]]


async def test_a_scoped_caller_s_roots_are_where_the_job_it_sees_begins(gateways):
    clients, scoped, _ = gateways
    for path, http in zip(("compiled", "generic"), clients, strict=True):
        for query in QUERIES:
            before = compiled_count()
            assert await roots(http, query, scoped) == ["2", "7"], (path, query)
            assert await roots(http, query, AUTH) == ["7"], (path, query)
            if path == "compiled" and "previous" not in query:
                assert compiled_count() == before + 2, query  # both answers from the compiled path


async def test_roots_seen_from_a_narrower_scope(gateways):
    """Scoped to a-7 alone, task 4 (a-8) is hidden too: task 5 now starts what the caller sees."""
    clients, _, narrow = gateways
    for http in clients:
        assert await roots(http, QUERIES[0], narrow) == ["2", "5", "7"]


async def test_the_roots_read_only_ids_and_only_in_the_scope(mongo_uri, store, raw_db, tmp_path):
    """What MongoDB is asked for a scoped caller's roots: the previous tasks of other jobs (1 and 4), by id,
    within the scope's range, and nothing else beside the job's own read."""
    await raw_db.tasks.insert_many([stored(*task) for task in TASKS])
    scoped = {"X-Auth-Token": await store.named_tokens().create("team-a", write=False, jobs=("a-",))}
    listener = TaskQueries()
    client = make_client(mongo_uri, event_listeners=[listener])
    try:
        app, _ = gateway_app(GraphStore(client, client[TEST_DB]), tmp_path)
        async with lifespan_client(app, scoped) as http:
            listener.sent.clear()
            assert await roots(http, QUERIES[0], scoped) == ["2", "7"]
    finally:
        await client.close()
    in_scope = {"$gte": "a-", "$lt": "a."}
    elsewhere = [sent for sent in listener.sent if "'_id': {'$in'" in str(sent)]
    assert len(elsewhere) == 1 and "[1, 4]" in str(elsewhere[0]) and str(in_scope) in str(elsewhere[0]), elsewhere
