"""Dashboards at fleet scale through GraphQL on the real MongoDB: listing and paging jobs (while they change),
filters, summaries, huge jobs, statusNot, what blocks what, and the critical path on hand-built graphs."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson.int64 import Int64
from hypothesis import given, settings
from hypothesis import strategies as st

from models import GraphStore
from models.graph import GraphCycle, critical_path, duration_ms
from models.stored_task import TaskDoc
from tests.conftest import TEST_DB
from tests.helpers import AUTH, gateway_app, lifespan_client
from tests.helpers import graphql_data as gql

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def http(gateway_client) -> httpx.AsyncClient:
    return await gateway_client(graphql_max_traversal=50, graphql_max_page=10)


@pytest.fixture
async def patient_http(store, mongo_uri, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    """As `http`, on a store whose MongoDB deadline is two minutes: for a test of what a large read answers,
    not of its deadline, which a loaded machine can take longer than the default's ten seconds to meet."""
    patient = await GraphStore.open(mongo_uri, TEST_DB, timeout_ms=120_000)
    try:
        app, _ = gateway_app(patient, tmp_path, graphql_max_traversal=50, graphql_max_page=10)
        async with lifespan_client(app, AUTH) as c:
            yield c
    finally:
        await patient.close()


async def gql_error(http: httpx.AsyncClient, query: str, variables: dict | None = None) -> dict:
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}})
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


def doc(task_id: int, job: str, *, status: str = "READY", updated: datetime = T0, **fields: Any) -> dict:
    """A stored task as the gateway writes it (times chosen by the test, links empty unless given)."""
    return {
        "_id": Int64(task_id),
        "job-id": job,
        "status": status,
        "creation-timestamp": T0,
        "update-timestamp": updated,
        "type": "task",
        "nexts": [Int64(i) for i in fields.pop("nexts", [])],
        "previous": [Int64(i) for i in fields.pop("previous", [])],
        **fields,
    }


async def seed_jobs(raw_db, count: int) -> None:
    """Jobs j00..j{count-1}; job jNN was last updated NN minutes after T0 (so j{count-1} is the newest)."""
    await raw_db.tasks.insert_many(
        [
            doc(n * 10 + k, f"j{n:02d}", updated=T0 + timedelta(minutes=n, seconds=k))
            for n in range(count)
            for k in (1, 2)
        ]
    )


JOBS = """query($first: Int, $after: String, $filter: JobFilter) {
  jobs(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""


async def all_pages(http: httpx.AsyncClient, first: int, job_filter: dict | None = None, between=None) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(http, JOBS, {"first": first, "after": after, "filter": job_filter}))["jobs"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if page["edges"]:
            assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]
        if between is not None:
            await between()


# ---- jobs ----------------------------------------------------------------------------------------------------------


async def test_jobs_newest_activity_first_then_by_id(http, raw_db):
    await seed_jobs(raw_db, 5)
    no_job = doc(200, "x", updated=T0 + timedelta(minutes=3, seconds=30))
    del no_job["job-id"]
    await raw_db.tasks.insert_one(no_job)  # a task without a job-id belongs to no job
    await raw_db.tasks.insert_many(
        [doc(100, "tie-b", updated=T0 + timedelta(hours=1)), doc(101, "tie-a", updated=T0 + timedelta(hours=1))]
    )
    assert await all_pages(http, 3) == ["tie-a", "tie-b", "j04", "j03", "j02", "j01", "j00"]


async def test_paging_is_stable_while_jobs_change(http, raw_db):
    """Between pages, an unseen job gets the newest update and a seen one too, and a new job appears: every job
    that existed throughout comes exactly once, in the order of the listing's first page."""
    await seed_jobs(raw_db, 9)
    changes = iter(
        [
            lambda: raw_db.tasks.update_one({"_id": 11}, {"$set": {"update-timestamp": T0 + timedelta(days=1)}}),
            lambda: raw_db.tasks.update_one({"_id": 81}, {"$set": {"update-timestamp": T0 + timedelta(days=2)}}),
            lambda: raw_db.tasks.insert_one(doc(999, "brand-new", updated=T0 + timedelta(days=3))),
        ]
    )

    async def change() -> None:
        step = next(changes, None)
        if step is not None:
            await step()

    assert await all_pages(http, 2, between=change) == [f"j{n:02d}" for n in range(8, -1, -1)]
    assert (await all_pages(http, 10))[:3] == ["brand-new", "j08", "j01"]  # a new listing sees the changes


async def test_job_filters(http, raw_db):
    await seed_jobs(raw_db, 12)
    await raw_db.tasks.update_one({"_id": 31}, {"$set": {"status": "FAILED"}})
    await raw_db.tasks.update_one({"_id": 51}, {"$set": {"status": "FAILED"}})
    assert await all_pages(http, 10, {"idPrefix": "j1"}) == ["j11", "j10"]
    assert await all_pages(http, 10, {"status": ["FAILED", "NONE"]}) == ["j05", "j03"]
    window = {
        "updatedAfter": (T0 + timedelta(minutes=3)).isoformat(),
        "updatedBefore": (T0 + timedelta(minutes=6)).isoformat(),
    }
    assert await all_pages(http, 10, window) == ["j05", "j04", "j03"]  # latest updates 3:02, 4:02, 5:02
    assert await all_pages(http, 10, {"idPrefix": "j0", "status": ["FAILED"]}) == ["j05", "j03"]


async def test_first_is_bounded_and_cursors_are_checked(http):
    assert "TRACKING_GRAPHQL_MAX_PAGE" in (await gql_error(http, JOBS, {"first": 11}))["message"]
    error = await gql_error(http, JOBS, {"first": 0})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    error = await gql_error(http, JOBS, {"after": "bm90IGEgY3Vyc29y"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "not a cursor" in error["message"]


@pytest.mark.parametrize("snapshot", [[4_102_444_800, 1], [2**32, 0], [-1, 0], [1, 2**40], [True, 1], [1.5, 1]])
async def test_a_cursor_whose_snapshot_no_listing_gave_is_refused(http, raw_db, snapshot):
    """A snapshot later than MongoDB's cluster time, or no timestamp at all, is no cursor a listing gave: refused
    naming the argument, not a failure of the gateway."""
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "j1", "status": "NEW", "nexts": [], "previous": []})
    forged = json.dumps({"u": 1_796_678_399_264, "j": "j1", "s": snapshot}).encode()
    error = await gql_error(http, JOBS, {"first": 5, "after": base64.urlsafe_b64encode(forged).decode().rstrip("=")})
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "not a cursor" in error["message"], error


async def test_a_cursor_whose_snapshot_mongodb_no_longer_reads_at_goes_on_over_current_data(http, raw_db):
    """A snapshot older than the collection's last catalog change (SnapshotUnavailable: a restart, a restore) is
    read as one too old: the listing goes on after the cursor's position over current data."""
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "j1", "status": "NEW", "nexts": [], "previous": []})
    old = json.dumps({"u": 1, "j": "zzz", "s": [1, 1]}).encode()
    page = await gql(http, JOBS, {"first": 5, "after": base64.urlsafe_b64encode(old).decode().rstrip("=")})
    assert [edge["node"]["id"] for edge in page["jobs"]["edges"]] == ["j1"]


SUMMARY = """query($id: String!) { job(id: $id) { id taskCount statusCounts { status count }
  summary { firstStart lastFinish lastUpdate durationMs doneCount progress } } }"""


async def test_summary_of_a_job(http, raw_db):
    await raw_db.tasks.insert_many(
        [
            doc(1, "s", status="DONE", **{"start-time": T0, "finish-time": T0 + timedelta(seconds=90)}),
            doc(2, "s", status="DONE", updated=T0 + timedelta(hours=2), **{"start-time": T0 + timedelta(seconds=30)}),
            doc(3, "s", status="RUNNING", **{"finish-time": T0 + timedelta(minutes=5)}),
            doc(4, "s", status="FAILED"),
        ]
    )
    job = (await gql(http, SUMMARY, {"id": "s"}))["job"]
    assert job["taskCount"] == 4
    assert job["statusCounts"] == [
        {"status": "DONE", "count": 2},
        {"status": "FAILED", "count": 1},
        {"status": "RUNNING", "count": 1},
    ]
    assert job["summary"] == {
        "firstStart": "2026-11-01T00:00:00.000Z",
        "lastFinish": "2026-11-01T00:05:00.000Z",
        "lastUpdate": "2026-11-01T02:00:00.000Z",
        "durationMs": 300_000,
        "doneCount": 2,
        "progress": 0.5,
    }


async def test_done_statuses_are_the_configured_ones_that_summaries_count(http, raw_db):
    """Dashboards (the live view among them) colour tasks as done by `doneStatuses`: the very statuses that
    doneCount, progress and blockedBy count as done (TRACKING_DONE_STATUSES, default here)."""
    configured = ["COMPLETED", "DONE", "FINISHED", "SKIPPED", "SUCCEEDED", "SUCCESS"]
    await raw_db.tasks.insert_many(
        [doc(index + 1, "d", status=status) for index, status in enumerate([*configured, "RUNNING", "done"])]
    )
    data = await gql(http, '{ doneStatuses job(id: "d") { summary { doneCount } } }')
    assert data["doneStatuses"] == configured
    assert data["job"]["summary"]["doneCount"] == len(configured)


async def test_a_running_job_lasts_until_now_and_one_without_start_has_no_duration(http, raw_db):
    started = datetime.now(UTC) - timedelta(minutes=10)
    start: dict[str, Any] = {"start-time": started}
    await raw_db.tasks.insert_many([doc(1, "running", **start), doc(2, "idle")])
    running = (await gql(http, SUMMARY, {"id": "running"}))["job"]["summary"]
    assert 600_000 <= running["durationMs"] < 700_000
    assert (await gql(http, SUMMARY, {"id": "idle"}))["job"]["summary"]["durationMs"] is None


async def test_a_job_over_the_bound_still_answers_everything_but_the_whole_list(http, raw_db):
    await raw_db.tasks.insert_many([doc(i, "big", status="DONE" if i % 2 else "READY") for i in range(1, 61)])
    job = (await gql(http, SUMMARY, {"id": "big"}))["job"]
    assert job["taskCount"] == 60 and job["summary"]["doneCount"] == 30
    page = await gql(http, '{ job(id: "big") { taskPage(first: 5) { edges { node { id } } } } }')
    assert [e["node"]["id"] for e in page["job"]["taskPage"]["edges"]] == ["1", "2", "3", "4", "5"]
    for field in ("tasks { id }", "edges { from }", "roots { id }", "criticalPath { id }"):
        error = await gql_error(http, f'{{ job(id: "big") {{ {field} }} }}')
        assert error["extensions"]["code"] == "TRAVERSAL_TOO_LARGE"
        assert "taskPage" in error["message"] and "TRACKING_GRAPHQL_MAX_TRAVERSAL" in error["message"]
    assert (await gql(http, '{ job(id: "nobody") { id } }'))["job"] is None


PAGE = """query($after: String, $status: [String!], $statusNot: [String!], $type: String) {
  job(id: "paged") { taskPage(first: 10, after: $after, status: $status, statusNot: $statusNot, type: $type) {
    edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }"""


async def task_pages(http, raw_db, variables: dict | None = None, insert_between: bool = False) -> list[int]:
    seen, after, extra = [], None, itertools.count(1000)
    while True:
        page = (await gql(http, PAGE, {**(variables or {}), "after": after}))["job"]["taskPage"]
        seen += [int(edge["node"]["id"]) for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]
        if insert_between:
            await raw_db.tasks.insert_one(doc(next(extra), "paged"))


async def test_task_page_yields_each_task_once_while_tasks_are_added(http, raw_db):
    await raw_db.tasks.insert_many([doc(i, "paged", status="DONE" if i % 3 == 0 else "READY") for i in range(1, 36)])
    seen = await task_pages(http, raw_db, insert_between=True)
    assert len(seen) == len(set(seen)) and set(range(1, 36)) <= set(seen)
    assert seen == sorted(seen)
    assert await task_pages(http, raw_db, {"status": ["DONE"]}) == list(range(3, 36, 3))
    assert all(i % 3 for i in await task_pages(http, raw_db, {"statusNot": ["DONE"]}) if i < 1000)
    assert await task_pages(http, raw_db, {"type": "other"}) == []


NAMED = """query($name: String, $status: [String!]) {
  job(id: "named") { taskPage(first: 10, name: $name, status: $status) { edges { node { id } } } } }"""


async def test_task_page_by_a_part_of_the_name_ignoring_case_and_regex_characters(http, raw_db):
    names = ["deploy api", "EU deploy web", "build", "a.b", "axb", "(x+", None]
    docs = [doc(i, "named", status="DONE" if i == 2 else "READY") for i in range(1, len(names) + 1)]
    for task, name in zip(docs, names, strict=True):
        if name is not None:
            task["name"] = name
    await raw_db.tasks.insert_many(docs)

    async def ids(**variables: Any) -> list[int]:
        edges = (await gql(http, NAMED, variables))["job"]["taskPage"]["edges"]
        return [int(edge["node"]["id"]) for edge in edges]

    assert await ids(name="DEPLOY") == [1, 2], "a substring, case ignored"
    assert await ids(name="deploy", status=["READY"]) == [1], "with the status filter"
    assert await ids(name="a.b") == [4], "a literal dot, not any character"
    assert await ids(name="(x+") == [6], "regex characters are plain text"
    assert await ids(name="") == [1, 2, 3, 4, 5, 6, 7], "empty: no filter"
    error = await gql_error(http, NAMED, {"name": "x" * 201})
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "200" in error["message"]


LEVELS = """query($id: String!) { job(id: $id) { levels { depth count statusCounts { status count } } } }"""


async def test_levels_count_each_stage_by_status_at_its_longest_depth(http, raw_db):
    """1 -> {2, 3} -> 4 -> 5, and 1 -> 5 directly: 5 is at stage 3 (after 4), not 1; a link out of the job and a
    task without status count too."""
    await raw_db.tasks.insert_many(
        [
            doc(1, "lv", status="DONE", nexts=[2, 3, 5]),
            doc(2, "lv", status="DONE", nexts=[4], previous=[1]),
            doc(3, "lv", status="RUNNING", nexts=[4, 99], previous=[1]),
            doc(4, "lv", status="READY", nexts=[5], previous=[2, 3]),
            doc(5, "lv", status="READY", previous=[1, 4]),
            {key: value for key, value in doc(6, "lv").items() if key != "status"},
            doc(99, "elsewhere", previous=[3]),
        ]
    )
    levels = (await gql(http, LEVELS, {"id": "lv"}))["job"]["levels"]
    assert levels == [
        {"depth": 0, "count": 2, "statusCounts": [{"status": None, "count": 1}, {"status": "DONE", "count": 1}]},
        {"depth": 1, "count": 2, "statusCounts": [{"status": "DONE", "count": 1}, {"status": "RUNNING", "count": 1}]},
        {"depth": 2, "count": 1, "statusCounts": [{"status": "READY", "count": 1}]},
        {"depth": 3, "count": 1, "statusCounts": [{"status": "READY", "count": 1}]},
    ]


BLOCKED = """query($id: String!) { job(id: $id) { levels { depth count blockedCount } } }"""
STAGE_PAGE = """query($id: String!, $depth: Int, $status: [String!], $first: Int!, $after: String) { job(id: $id) {
  taskPage(first: $first, depth: $depth, status: $status, after: $after) { edges { node { id } cursor }
  pageInfo { hasNextPage } } } }"""


async def test_levels_count_the_blocked_tasks_and_the_table_goes_to_a_stage(http, raw_db):
    """1 DONE -> {2 FAILED, 3 DONE}; 2 -> 4 READY (blocked: 2 is not done); 3 -> 5 READY (free to start);
    6 RUNNING -> 7 DONE (done: not blocked, whatever came before); 8 READY waits on 9 of another job (links
    out of the job are not followed: not blocked); 2 -> 10 RUNNING and 11 ERROR (under way: not blocked)."""
    await raw_db.tasks.insert_many(
        [
            doc(1, "bl", status="DONE", nexts=[2, 3]),
            doc(2, "bl", status="FAILED", nexts=[4, 10, 11], previous=[1]),
            doc(3, "bl", status="DONE", nexts=[5], previous=[1]),
            doc(4, "bl", status="READY", previous=[2]),
            doc(5, "bl", status="READY", previous=[3]),
            doc(6, "bl", status="RUNNING", nexts=[7]),
            doc(7, "bl", status="DONE", previous=[6]),
            doc(8, "bl", status="READY", previous=[9]),
            doc(9, "other", status="READY", nexts=[8]),
            doc(10, "bl", status="RUNNING", previous=[2]),
            doc(11, "bl", status="ERROR", previous=[2]),
        ]
    )
    levels = (await gql(http, BLOCKED, {"id": "bl"}))["job"]["levels"]
    assert levels == [
        {"depth": 0, "count": 3, "blockedCount": 0},
        {"depth": 1, "count": 3, "blockedCount": 0},
        {"depth": 2, "count": 4, "blockedCount": 1},
    ], "10 and 11 wait on 2 too, but are under way: not blocked"

    async def stage(depth: int | None, first: int = 10, **variables: Any) -> tuple[list[int], bool]:
        page = (await gql(http, STAGE_PAGE, {"id": "bl", "depth": depth, "first": first, **variables}))["job"]
        edges = page["taskPage"]["edges"]
        return [int(edge["node"]["id"]) for edge in edges], page["taskPage"]["pageInfo"]["hasNextPage"]

    assert await stage(1) == ([2, 3, 7], False)
    assert await stage(1, status=["DONE"]) == ([3, 7], False), "with the status filter"
    first_page = (await gql(http, STAGE_PAGE, {"id": "bl", "depth": 0, "first": 2}))["job"]["taskPage"]
    assert [edge["node"]["id"] for edge in first_page["edges"]] == ["1", "6"] and first_page["pageInfo"]["hasNextPage"]
    assert await stage(0, after=first_page["edges"][-1]["cursor"]) == ([8], False), "paged within the stage"
    assert await stage(3) == ([], False)
    assert await stage(None) == ([1, 2, 3, 4, 5, 6, 7, 8, 10, 11], False)
    error = await gql_error(http, STAGE_PAGE, {"id": "bl", "depth": -1, "first": 10})
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "depth" in error["message"]
    await raw_db.tasks.insert_many([doc(2001, "loop", nexts=[2002]), doc(2002, "loop", nexts=[2001])])
    assert "cycle" in (await gql_error(http, STAGE_PAGE, {"id": "loop", "depth": 0, "first": 10}))["message"]


async def test_levels_of_tasks_with_more_links_than_one_answer_document_holds(patient_http, raw_db):
    """25 tasks with 50,000 next tasks each (of another job): their links, about 17 MiB, are more than one
    document of the packed read holds, so they are read task by task, with the same answer."""
    fan_out = range(1_000_000, 1_050_000)
    tasks = [doc(i, "fan", status="RUNNING" if i == 1 else "READY", nexts=fan_out) for i in range(1, 26)]
    tasks[0]["nexts"].append(Int64(2))
    tasks[1]["previous"] = [Int64(1)]
    await raw_db.tasks.insert_many(tasks)  # in one go: each update of a task's links stored an image of it
    levels = (await gql(patient_http, BLOCKED, {"id": "fan"}))["job"]["levels"]
    assert levels == [{"depth": 0, "count": 24, "blockedCount": 0}, {"depth": 1, "count": 1, "blockedCount": 1}]


async def test_levels_go_beyond_the_traversal_bound_but_not_without_limit(http, raw_db):
    """The fixture's TRACKING_GRAPHQL_MAX_TRAVERSAL is 50: levels answer for 60 tasks, refuse 501."""
    await raw_db.tasks.insert_many([doc(i, "sixty", nexts=[i + 1] if i < 60 else []) for i in range(1, 61)])
    levels = (await gql(http, LEVELS, {"id": "sixty"}))["job"]["levels"]
    assert [level["depth"] for level in levels] == list(range(60))
    await raw_db.tasks.insert_many([doc(i, "too-big") for i in range(1000, 1501)])
    error = await gql_error(http, LEVELS, {"id": "too-big"})
    assert (
        error["extensions"]["code"] == "TRAVERSAL_TOO_LARGE"
        and "10 x TRACKING_GRAPHQL_MAX_TRAVERSAL" in error["message"]
    )
    await raw_db.tasks.insert_many([doc(2001, "loop", nexts=[2002]), doc(2002, "loop", nexts=[2001])])
    assert "cycle" in (await gql_error(http, LEVELS, {"id": "loop"}))["message"]


# ---- links: statusNot, blockedBy ------------------------------------------------------------------------------------


async def diamond(raw_db) -> None:
    """1 -> {2 DONE, 3 RUNNING} -> 4 READY; 1 FAILED."""
    await raw_db.tasks.insert_many(
        [
            doc(1, "d", status="FAILED", nexts=[2, 3]),
            doc(2, "d", status="DONE", nexts=[4], previous=[1]),
            doc(3, "d", status="RUNNING", nexts=[4], previous=[1]),
            doc(4, "d", status="READY", previous=[2, 3]),
        ]
    )


async def test_status_not_beside_every_status_filter(http, raw_db):
    await diamond(raw_db)
    data = await gql(
        http,
        """{ task(id: "1") { nexts(statusNot: ["DONE"]) { id } descendants(statusNot: ["READY"]) { id } }
             four: task(id: "4") { previous(statusNot: ["RUNNING"]) { id } ancestors(statusNot: ["FAILED"]) { id } }
             job(id: "d") { tasks(statusNot: ["DONE", "READY"]) { id } } }""",
    )
    assert data["task"] == {"nexts": [{"id": "3"}], "descendants": [{"id": "2"}, {"id": "3"}]}
    assert data["four"] == {"previous": [{"id": "2"}], "ancestors": [{"id": "2"}, {"id": "3"}]}
    assert data["job"]["tasks"] == [{"id": "1"}, {"id": "3"}]


async def test_blocked_by_names_what_a_task_waits_for_nearest_first(http, raw_db):
    await diamond(raw_db)
    data = await gql(
        http, '{ task(id: "4") { direct: blockedBy { id status } all: blockedBy(transitive: true) { id status } } }'
    )
    assert data["task"]["direct"] == [{"id": "3", "status": "RUNNING"}]
    assert data["task"]["all"] == [{"id": "3", "status": "RUNNING"}, {"id": "1", "status": "FAILED"}]
    assert (await gql(http, '{ task(id: "1") { blockedBy(transitive: true) { id } } }'))["task"]["blockedBy"] == []


# ---- critical path --------------------------------------------------------------------------------------------------


def timed(task_id: int, job: str, seconds: int | None, **fields: Any) -> dict:
    times: dict[str, Any] = (
        {} if seconds is None else {"start-time": T0, "finish-time": T0 + timedelta(seconds=seconds)}
    )
    return doc(task_id, job, **times, **fields)


async def test_critical_path_on_a_graph_with_a_known_answer(http, raw_db):
    """1(10s) -> 2(5s) -> 4(1s); 1 -> 3(30s) -> 4; 5(100s) alone; 6(50s) -> 7(60s). Chains: 1-3-4 = 41 s,
    5 = 100 s, 6-7 = 110 s: the critical path is 6, 7."""
    await raw_db.tasks.insert_many(
        [
            timed(1, "cp", 10, nexts=[2, 3]),
            timed(2, "cp", 5, nexts=[4], previous=[1]),
            timed(3, "cp", 30, nexts=[4], previous=[1]),
            timed(4, "cp", 1, previous=[2, 3]),
            timed(5, "cp", 100),
            timed(6, "cp", 50, nexts=[7]),
            timed(7, "cp", 60, previous=[6]),
            timed(8, "other-job", 1000, previous=[7]),  # a next in another job does not count
        ]
    )
    await raw_db.tasks.update_one({"_id": 7}, {"$set": {"nexts": [Int64(8)]}})
    path = (await gql(http, '{ job(id: "cp") { criticalPath { id } } }'))["job"]["criticalPath"]
    assert [task["id"] for task in path] == ["6", "7"]


async def test_critical_path_ties_go_to_lower_ids_and_cycles_are_named(http, raw_db):
    await raw_db.tasks.insert_many(
        [timed(1, "tie", 5, nexts=[3]), timed(2, "tie", 5, nexts=[3]), timed(3, "tie", 5, previous=[1, 2])]
    )
    path = (await gql(http, '{ job(id: "tie") { criticalPath { id } } }'))["job"]["criticalPath"]
    assert [task["id"] for task in path] == ["1", "3"]
    await raw_db.tasks.insert_many(
        [
            timed(10, "loop", 1, nexts=[11]),
            timed(11, "loop", 1, nexts=[12], previous=[10]),
            timed(12, "loop", 1, nexts=[11], previous=[11]),
        ]
    )
    error = await gql_error(http, '{ job(id: "loop") { criticalPath { id } } }')
    assert error["extensions"]["code"] == "GRAPH_CYCLE"
    assert "task 11 (11 -> 12 -> 11)" in error["message"]
    # Refused, the path is null and the rest of the job is still answered (a dashboard still draws the graph).
    query = '{ job(id: "loop") { taskCount tasks { id } criticalPath { id } levels { depth } } }'
    response = (await http.post("/graphql", json={"query": query})).json()
    assert response["data"]["job"] == {
        "taskCount": 3,
        "tasks": [{"id": "10"}, {"id": "11"}, {"id": "12"}],
        "criticalPath": None,
        "levels": None,
    }
    assert sorted(error["path"][-1] for error in response["errors"]) == ["criticalPath", "levels"]
    assert {error["extensions"]["code"] for error in response["errors"]} == {"GRAPH_CYCLE"}


@st.composite
def dags(draw: st.DrawFn) -> dict[int, dict]:
    """Small random DAGs (links only from lower to higher ids) with random durations, some without a start."""
    size = draw(st.integers(1, 7))
    tasks: dict[int, dict] = {}
    for task_id in range(1, size + 1):
        seconds = draw(st.one_of(st.none(), st.integers(0, 5)))
        nexts = draw(st.sets(st.integers(task_id + 1, size), max_size=3)) if task_id < size else set()
        times = {} if seconds is None else {"start-time": T0, "finish-time": T0 + timedelta(seconds=seconds)}
        tasks[task_id] = {"_id": task_id, "nexts": sorted(nexts), **times}
    return tasks


def every_chain(tasks: dict[int, dict]) -> list[list[int]]:
    """Every path from a task with no previous to a task with no next, by brute force."""
    has_previous = {i for task in tasks.values() for i in task["nexts"]}
    chains, pending = [], [[task_id] for task_id in tasks if task_id not in has_previous]
    while pending:
        chain = pending.pop()
        following = tasks[chain[-1]]["nexts"]
        chains += [chain] if not following else []
        pending += [[*chain, i] for i in following]
    return chains


@settings(max_examples=300, deadline=None)
@given(dags())
def test_the_critical_path_is_a_longest_chain(tasks):
    now = T0 + timedelta(hours=1)
    path = critical_path(tasks, now)
    chains = every_chain(tasks)
    length = {tuple(chain): sum(duration_ms(tasks[i], now) for i in chain) for chain in chains}
    assert tuple(path) in length, "the path is a chain from a first task to a last one"
    assert length[tuple(path)] == max(length.values())


def test_a_cycle_is_refused_naming_it():
    tasks: dict[int, TaskDoc] = {1: {"_id": 1, "nexts": [2]}, 2: {"_id": 2, "nexts": [3]}, 3: {"_id": 3, "nexts": [2]}}
    with pytest.raises(GraphCycle) as refused:
        critical_path(tasks, T0)
    assert refused.value.cycle == [2, 3, 2]
