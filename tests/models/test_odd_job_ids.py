"""Tasks whose `job-id` a tool stored as something other than a string (an array, a document, a number, null, a
JavaScript string, no field at all) are in no job scope: a caller scoped to `a-` never reads, changes, links,
counts, lists or hears of them, on any path (REST, GraphQL's generic and compiled paths, subscriptions), even
when the value holds a string of the scope (`["b-7", "a-7"]`: MongoDB's queries match an array by any element).
Callers allowed every job still see them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bson.code import Code
from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.read_concern import ReadConcern

from models import HistoryWriter
from models.scopes import in_scope, scope_filter
from tests.helpers import (
    AUTH,
    eventually,
    gateway_app,
    lifespan_client,
    next_event,
    served,
    subscription,
    writing_history,
)

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

SCOPE = "a-"
JOB = "a-7"
ODD_JOBS: dict[int, Any] = {
    10: ["b-7", JOB],
    11: [JOB],
    12: {"id": JOB},
    13: 7,
    14: None,
    15: Code(JOB),
    16: [[JOB]],
    17: ["a-9"],  # the only task holding job a-9
}
"""Task id -> its stored job-id; task 18 has none. Each holds the status ODD and the job's name."""
ODD_IDS = [*ODD_JOBS, 18]


def link_ids(*ids: int) -> list[Int64]:
    return [Int64(i) for i in ids]


async def seed(raw_db) -> None:
    """Task 1 -> task 2 of job a-7, task 2 -> each odd task (as a tool links them)."""
    plain = [
        {"_id": Int64(1), "job-id": JOB, "status": "DONE", "root": True, "nexts": link_ids(2), "previous": []},
        {"_id": Int64(2), "job-id": JOB, "status": "READY", "nexts": link_ids(*ODD_IDS), "previous": link_ids(1)},
    ]
    odd = [
        {"_id": Int64(task_id), "status": "ODD", "name": JOB, "root": True, "nexts": [], "previous": link_ids(2)}
        | ({"job-id": ODD_JOBS[task_id]} if task_id in ODD_JOBS else {})
        for task_id in ODD_IDS
    ]
    await raw_db.tasks.insert_many(plain + odd, bypass_document_validation=True)


@pytest.fixture
async def scoped(store, raw_db, tmp_path):
    """The compiled and the generic GraphQL path (REST alike on both), each with a token scoped to SCOPE."""
    await seed(raw_db)
    secret = await store.named_tokens().create("team-a", write=True, jobs=(SCOPE,))
    compiled, _ = gateway_app(store, tmp_path / "compiled")
    generic, _ = gateway_app(store, tmp_path / "generic", graphql_compiled=False)
    headers = {"X-Auth-Token": secret}
    async with lifespan_client(compiled, headers) as one, lifespan_client(generic, headers) as other:
        yield one, other


async def stored(raw_db) -> list[dict[str, Any]]:
    return await raw_db.tasks.find({}).sort("_id").to_list(None)


async def data(http: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None) -> Any:
    answer = (await http.post("/graphql", json={"query": query}, headers=headers)).json()
    assert "errors" not in answer, answer
    return answer["data"]


async def test_rest_neither_reads_nor_changes_a_task_whose_job_is_no_string(scoped, raw_db):
    http, _ = scoped
    before = await stored(raw_db)
    for task_id in ODD_IDS:
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", f"/tracking/task/{task_id}", {}),
            ("PUT", f"/tracking/task/{task_id}", {"json": {"status": "DONE"}}),
            ("PUT", f"/tracking/task/{task_id}", {"json": {"job-id": "a-8"}}),  # a move into the scope
            ("DELETE", f"/tracking/task/{task_id}", {}),
            ("GET", f"/tracking/task/{task_id}/next", {}),
            ("GET", f"/tracking/task/{task_id}/previous", {}),
            ("PUT", f"/tracking/task/1/next?nextTaskId={task_id}", {}),
            ("PUT", f"/tracking/task/{task_id}/previous?prevTaskId=1", {}),
            ("DELETE", f"/tracking/task/2/next?nextTaskId={task_id}", {}),
            ("DELETE", f"/tracking/task/{task_id}/previous?prevTaskId=2", {}),
        ]
        for method, path, options in requests:
            answer = await http.request(method, path, **options)
            assert answer.status_code == 404, (method, path, answer.text)
            assert str(task_id) in answer.json()["message"]
    assert await stored(raw_db) == before
    assert (await http.get("/tracking/task/2/next")).json()["tasks"] == []
    listed = (await http.get(f"/tracking/{JOB}/task/roots")).json()["tasks"]
    assert [task["id"] for task in listed] == [1, 2]


async def test_graphql_reads_leave_them_out_on_both_paths(scoped):
    every = ", ".join(f'"{task_id}"' for task_id in ODD_IDS)
    reads = {
        "tasks": (f"{{ tasks(ids: [{every}]) {{ id }} }}", {"tasks": [None] * len(ODD_IDS)}),
        "walks": (
            '{ task(id: "2") { nexts { id } descendants { id } } }',
            {"task": {"nexts": [], "descendants": []}},
        ),
        "job": (
            f'{{ job(id: "{JOB}") {{ taskCount statusCounts {{ status count }} tasks {{ id }} edges {{ from to }} '
            "summary { progress } levels { depth count } criticalPath { id } "
            "taskPage(first: 50) { edges { node { id } } } } }",
            {
                "job": {
                    "taskCount": 2,
                    "statusCounts": [{"status": "DONE", "count": 1}, {"status": "READY", "count": 1}],
                    "tasks": [{"id": "1"}, {"id": "2"}],
                    "edges": [{"from": "1", "to": "2"}],
                    "summary": {"progress": 0.5},
                    "levels": [{"depth": 0, "count": 1}, {"depth": 1, "count": 1}],
                    "criticalPath": [{"id": "1"}, {"id": "2"}],
                    "taskPage": {"edges": [{"node": {"id": "1"}}, {"node": {"id": "2"}}]},
                }
            },
        ),
        "counts alone": (f'{{ job(id: "{JOB}") {{ taskCount }} }}', {"job": {"taskCount": 2}}),
        "a stage": (
            f'{{ job(id: "{JOB}") {{ taskPage(depth: 2) {{ edges {{ node {{ id }} }} }} }} }}',
            {"job": {"taskPage": {"edges": []}}},
        ),
        "jobs": (
            "{ jobs { edges { node { id taskCount } } } }",
            {"jobs": {"edges": [{"node": {"id": JOB, "taskCount": 2}}]}},
        ),
        "jobs by status": ('{ jobs(filter: {status: ["ODD"]}) { edges { node { id } } } }', {"jobs": {"edges": []}}),
        "a job only an array names": ('{ job(id: "a-9") { id taskCount } }', {"job": None}),
        "its tasks alone": ('{ job(id: "a-9") { tasks { id } } }', {"job": None}),
    }
    for path in scoped:
        for name, (query, expected) in reads.items():
            assert await data(path, query) == expected, name


async def test_graphql_mutations_answer_not_found_and_change_nothing(scoped, raw_db):
    before = await stored(raw_db)
    for path in scoped:
        for task_id in ODD_IDS:
            for mutation in (
                f'updateTask(id: "{task_id}", patch: {{status: "DONE"}}) {{ id }}',
                f'updateTask(id: "{task_id}", patch: {{jobId: "a-8"}}) {{ id }}',
                f'deleteTask(id: "{task_id}")',
                f'addNexts(id: "1", nextIds: ["{task_id}"]) {{ id }}',
                f'removeNexts(id: "2", nextIds: ["{task_id}"])',
                f'addPrevious(id: "{task_id}", previousIds: ["1"]) {{ id }}',
                f'removePrevious(id: "{task_id}", previousIds: ["2"])',
            ):
                answer = (await path.post("/graphql", json={"query": f"mutation {{ {mutation} }}"})).json()
                assert answer["errors"][0]["extensions"]["code"] == "NOT_FOUND", (mutation, answer)
    assert await stored(raw_db) == before


async def test_callers_allowed_every_job_still_see_them(store, raw_db, tmp_path):
    await seed(raw_db)
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, AUTH) as http:
        for task_id in ODD_IDS:
            answer = await http.get(f"/tracking/task/{task_id}")
            assert answer.status_code == 200 and answer.json()["name"] == JOB
        nexts = (await http.get("/tracking/task/2/next")).json()["tasks"]
        assert [task["id"] for task in nexts] == ODD_IDS


@pytest.mark.parametrize("variables", [{}, {"jobId": JOB}], ids=["every job", "job a-7"])
async def test_a_scoped_subscription_hears_nothing_of_them(store, raw_db, tmp_path, variables):
    await seed(raw_db)
    secret = await store.named_tokens().create("team-a", write=True, jobs=(SCOPE,))
    app, settings = gateway_app(store, tmp_path)
    async with (
        served(app, settings) as port,
        subscription(port, variables, secret, "kind task { id }", until_live=True) as ws,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as writer,
    ):
        for task_id in [*ODD_IDS, 1]:  # the odd ones first: only task 1's change may come
            changed = await writer.put(f"/tracking/task/{task_id}", json={"status": "RUNNING"})
            assert changed.status_code == 200, changed.text
        assert (await next_event(ws))["task"]["id"] == "1"


@pytest.mark.parametrize("variables", [{}, {"jobId": JOB}], ids=["every job", "job a-7"])
async def test_a_scoped_subscription_catching_up_hears_nothing_of_them(store, raw_db, tmp_path, variables):
    """Its catch-up (`after:` a cursor taken before the changes) reads a change stream of its own."""
    await seed(raw_db)
    secret = await store.named_tokens().create("team-a", write=True, jobs=(SCOPE,))
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        cursor = await data(http, "{ eventCursor }", {"X-Auth-Token": secret})
        for task_id in [*ODD_IDS, 1, 2]:  # the odd ones first: only tasks 1 and 2 may be heard of
            changed = await http.put(f"/tracking/task/{task_id}", json={"status": "RUNNING"}, headers=AUTH)
            assert changed.status_code == 200, changed.text
        after = variables | {"after": cursor["eventCursor"]}
        async with subscription(port, after, secret, "kind task { id }") as ws:
            assert [(await next_event(ws))["task"]["id"] for _ in range(2)] == ["1", "2"]


@pytest.mark.parametrize("catching_up", [False, True], ids=["live", "catching up"])
async def test_a_job_s_subscription_allowed_every_job_hears_of_the_arrays_holding_the_job(
    store, raw_db, tmp_path, catching_up
):
    """To callers allowed every job, an array's task belongs to each job id it holds (as queries read it): that
    job's subscriptions hear of its changes, live and catching up, as its queries list it."""
    await seed(raw_db)
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        listed = await data(http, '{ job(id: "a-7") { tasks { id } } }', AUTH)
        assert {"10", "11"} <= {task["id"] for task in listed["job"]["tasks"]}
        cursor = (await data(http, "{ eventCursor }", AUTH))["eventCursor"]

        async def change_each() -> None:
            for task_id in [*ODD_IDS, 1]:
                changed = await http.put(f"/tracking/task/{task_id}", json={"status": "RUNNING"}, headers=AUTH)
                assert changed.status_code == 200, changed.text

        if catching_up:  # changed before it subscribes: its catch-up reads them
            await change_each()
        variables = {"jobId": JOB} | ({"after": cursor} if catching_up else {})
        async with subscription(port, variables, AUTH["X-Auth-Token"], "kind task { id }", until_live=True) as ws:
            if not catching_up:
                await change_each()
            heard = [(await next_event(ws))["task"]["id"] for _ in range(3)]
    assert heard == ["10", "11", "1"]


async def test_a_link_closing_a_cycle_through_them_is_refused_naming_no_hidden_task(scoped, raw_db):
    """Cycle refusal walks every task (docs/decisions/callers.md): 1 -> 2 -> 13 -> 1 must not close through task
    13, which the caller cannot see; the refusal names the link asked for, and nothing of the path."""
    await raw_db.tasks.update_one({"_id": 13}, {"$set": {"nexts": link_ids(1)}})
    await raw_db.tasks.update_many({"_id": {"$in": [1, 2]}}, {"$set": {"nexts": [], "previous": []}})
    await raw_db.tasks.update_one({"_id": 2}, {"$set": {"nexts": link_ids(13)}})
    await raw_db.tasks.update_one({"_id": 1}, {"$set": {"previous": link_ids(13)}})  # both sides, as a tool links
    before = await stored(raw_db)
    for path in scoped:
        refused = await path.put("/tracking/task/1/next?nextTaskId=2")
        assert refused.json() == {"code": 400, "message": "linking task 1 to next task 2 would close a cycle"}
        answer = await path.post("/graphql", json={"query": 'mutation { addNexts(id: "1", nextIds: ["2"]) { id } }'})
        assert answer.json()["errors"][0]["message"] == "linking task 1 to next task 2 would close a cycle"
    assert await stored(raw_db) == before


async def test_their_history_is_read_by_no_scoped_caller(store, raw_db, tmp_path):
    """The history writer records an entry's job for scoped reads: a job stored as a number (served as its text,
    "7") must not make the task's changes readable to a caller scoped to "7"."""
    await seed(raw_db)
    tokens = store.named_tokens()
    seven = {"X-Auth-Token": await tokens.create("seven", write=False, jobs=("7",))}
    team_a = {"X-Auth-Token": await tokens.create("team-a", write=False, jobs=(SCOPE,))}
    app, _ = gateway_app(store, tmp_path)
    changed = [*ODD_IDS, 1]
    async with (
        writing_history(raw_db, HistoryWriter(store._database, "solo", flush_s=0.2)),
        lifespan_client(app, AUTH) as http,
    ):
        for task_id in changed:
            assert (await http.put(f"/tracking/task/{task_id}", json={"status": "RUNNING"})).status_code == 200
        majority = raw_db.task_history.with_options(read_concern=ReadConcern("majority"))

        async def recorded() -> bool:
            return len(await majority.distinct("task")) == len(changed)

        await eventually(recorded, what="an entry for each change")
        fields = " ".join(f'h{task_id}: taskHistory(id: "{task_id}") {{ kind }}' for task_id in changed)
        for headers, expected in ((seven, set()), (team_a, {1}), (AUTH, set(changed))):
            answer = (await http.post("/graphql", json={"query": f"{{ {fields} }}"}, headers=headers)).json()
            assert "errors" not in answer, answer
            assert {int(key[1:]) for key, entries in answer["data"].items() if entries} == expected, headers


# ---- the rule itself: MongoDB's filter and the Python predicate agree -----------------------------------------------

ABSENT = object()
TEXT = st.text(alphabet="ab-7\U0010ffff", max_size=4)
STORED_JOBS = st.one_of(
    st.just(ABSENT),
    st.recursive(
        st.one_of(TEXT, st.none(), st.integers(-9, 9), st.floats(allow_nan=False), TEXT.map(Code), st.booleans()),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "x"]), inner, max_size=2),
        max_leaves=6,
    ),
)
SCOPES = st.none() | st.lists(TEXT, max_size=3).map(tuple)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(jobs=st.lists(STORED_JOBS, max_size=8), scope=SCOPES)
async def test_the_scope_s_query_matches_exactly_the_jobs_the_scope_holds(raw_db, jobs, scope):
    """Whatever a tool stored as a job, MongoDB's clause for a scope (every scoped read) and `in_scope` (what a
    scoped subscription and every job id given as an argument are judged by) say the same."""
    probe = raw_db["scope_probe"]
    await probe.delete_many({})
    docs = [{"_id": number} | ({} if job is ABSENT else {"job-id": job}) for number, job in enumerate(jobs)]
    if docs:
        await probe.insert_many(docs)
    found = {doc["_id"] async for doc in probe.find(scope_filter(scope) or {}, {"_id": 1})}
    assert found == {number for number, job in enumerate(jobs) if in_scope(None if job is ABSENT else job, scope)}
