"""The jobs listing pages by job, newest activity first: tasks whose `job-id` a tool stored as no string (arrays,
documents, numbers, JavaScript) form groups of their own, which are no job and must take no place on a page, so a
page holds `first` jobs whenever that many follow, for a caller scoped to some jobs and one allowed every job. A
job-id stored as a BSON symbol is the string it holds, to the listing as to every reader and scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from bson.code import Code
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from models import JobFilter, JobPosition
from models.jobs.listing import JOBS_INDEX, jobs_pipeline
from models.scopes import scope_ranges
from tests.helpers import AUTH, gateway_app, lifespan_client

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

OLD = datetime(2026, 1, 1, tzinfo=UTC)
ODD_JOBS: list[Any] = [["a-7"], ["b-7", "a-7"], ["a-9", "a-8"], ["a-5"], 7, {"id": "a-7"}, Code("a-7"), None]
"""Stored job-ids that are no job, each on a task updated after every real job's."""

PAGE = """query($after: String) {
  jobs(first: 1, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
}"""


async def seed(raw_db) -> None:
    real = [
        {"_id": Int64(1), "job-id": "a-1", "status": "DONE", "update-timestamp": OLD},
        {"_id": Int64(2), "job-id": "a-2", "status": "DONE", "update-timestamp": OLD - timedelta(days=1)},
    ]
    odd = [
        {"_id": Int64(10 + number), "job-id": job, "status": "ODD", "update-timestamp": OLD + timedelta(days=number)}
        for number, job in enumerate(ODD_JOBS, start=1)
    ]
    await raw_db.tasks.insert_many(real + odd, bypass_document_validation=True)
    symbol = {"_id": Int64(3), "job-id": "a-3", "status": "DONE", "update-timestamp": OLD - timedelta(days=2)}
    await raw_db.tasks.insert_one(with_symbol_job(symbol), bypass_document_validation=True)


def with_symbol_job(doc: dict[str, Any]) -> RawBSONDocument:
    """`doc` with its `job-id` string stored as a BSON symbol, as old drivers write it (PyMongo writes none)."""
    raw = bytearray(bson.encode(doc))
    raw[raw.index(b"\x02job-id\x00")] = 0x0E  # the element's type byte: a symbol is laid out as a string
    return RawBSONDocument(bytes(raw))


async def every_page(http) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        answer = (await http.post("/graphql", json={"query": PAGE, "variables": {"after": after}})).json()
        assert "errors" not in answer, answer
        jobs = answer["data"]["jobs"]
        pages.append([edge["node"]["id"] for edge in jobs["edges"]])
        if not jobs["pageInfo"]["hasNextPage"]:
            return pages
        after = jobs["pageInfo"]["endCursor"]
        assert len(pages) < 10, pages


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "every job"])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "generic"])
async def test_groups_of_odd_job_ids_take_no_place_on_a_page(store, raw_db, tmp_path, scoped, compiled):
    await seed(raw_db)
    app, _ = gateway_app(store, tmp_path, graphql_compiled=compiled)
    headers = {"X-Auth-Token": await store.named_tokens().create("team-a", write=False, jobs=("a-",))}
    async with lifespan_client(app, headers if scoped else AUTH) as http:
        pages = await every_page(http)
    if scoped:
        assert pages == [["a-1"], ["a-2"], ["a-3"]]
    else:  # MongoDB's reading of an array (models.scopes) may list its strings: a page is never short all the same
        assert all(len(page) == 1 for page in pages), pages
        assert [page for page in pages if page[0] in ("a-1", "a-2", "a-3")] == [["a-1"], ["a-2"], ["a-3"]]


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "every job"])
@pytest.mark.parametrize("after", [None, JobPosition(OLD, "a-0")], ids=["first page", "a later page"])
async def test_the_listing_still_reads_one_index_key_per_job(raw_db, after, scoped):
    """Leaving the groups out after the $group keeps the plan the listing is built for (models.jobs.listing). On
    a collection of its own: an index that ever held an array (as the test above stores) stays multikey, and a
    multikey index offers no DISTINCT_SCAN whatever the pipeline."""
    tasks = raw_db.listing_plan
    await tasks.create_index([("job-id", 1), ("update-timestamp", -1)], name=JOBS_INDEX)
    await tasks.insert_many(
        [{"_id": Int64(task_id), "job-id": f"a-{task_id % 3}", "update-timestamp": OLD} for task_id in range(1, 10)]
    )
    pipeline = jobs_pipeline(1, after, JobFilter(), None, scope_ranges(("a-",)) if scoped else None)
    explain = {"aggregate": tasks.name, "pipeline": pipeline, "cursor": {}, "hint": JOBS_INDEX}
    plan = await raw_db.command({"explain": explain, "verbosity": "queryPlanner"})
    rows = await (await tasks.aggregate(pipeline, hint=JOBS_INDEX)).to_list(None)
    await tasks.drop()
    assert "DISTINCT_SCAN" in str(plan), plan
    assert [row["_id"] for row in rows] == (["a-0", "a-1"] if after is None else ["a-1", "a-2"])


@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "every job"])
async def test_a_job_whose_name_a_tool_also_stored_as_javascript_is_listed_once(store, raw_db, tmp_path, scoped):
    """JavaScript holding a job's name is no job; grouped apart from the job's tasks, it was served as the same
    string: the job twice on a page. The empty array makes the index multikey, as any array job-id does."""
    await raw_db.tasks.insert_many(
        [
            {"_id": Int64(1), "job-id": Code("a-dup"), "status": "S", "update-timestamp": OLD + timedelta(days=1)},
            {"_id": Int64(2), "job-id": [], "update-timestamp": OLD},
            {"_id": Int64(3), "job-id": "a-dup", "status": "S", "update-timestamp": OLD},
        ],
        bypass_document_validation=True,
    )
    app, _ = gateway_app(store, tmp_path)
    headers = {"X-Auth-Token": await store.named_tokens().create("team-a", write=False, jobs=("a-",))}
    listing = "{ jobs(first: 10%s) { edges { node { id taskCount } } } }"
    async with lifespan_client(app, headers if scoped else AUTH) as http:
        for condition in ("", ', filter: {status: ["S"]}'):
            answer = (await http.post("/graphql", json={"query": listing % condition})).json()
            assert answer["data"]["jobs"]["edges"] == [{"node": {"id": "a-dup", "taskCount": 1}}], (condition, answer)
        pages = await every_page(http)
    assert pages == [["a-dup"]]


async def test_a_symbol_job_id_is_its_string_on_every_path_of_a_scope(store, raw_db, tmp_path):
    """MongoDB compares a symbol as a string (a scope's range holds it) and PyMongo decodes it as one (so do a
    subscription's filter and the history writer): readers serve it, and the scope agrees on every path."""
    await seed(raw_db)
    app, _ = gateway_app(store, tmp_path)
    team_a = {"X-Auth-Token": await store.named_tokens().create("team-a", write=False, jobs=("a-3",))}
    team_b = {"X-Auth-Token": await store.named_tokens().create("team-b", write=False, jobs=("b-",))}
    job = '{ job(id: "a-3") { id taskCount tasks { id } roots { id } } jobs { edges { node { id } } } }'
    async with lifespan_client(app, team_a) as a, lifespan_client(app, team_b) as b:
        assert (await a.get("/tracking/task/3")).json()["job-id"] == "a-3"
        assert (await b.get("/tracking/task/3")).status_code == 404
        seen = {"job": {"id": "a-3", "taskCount": 1, "tasks": [{"id": "3"}], "roots": [{"id": "3"}]}}
        assert (await a.post("/graphql", json={"query": job})).json()["data"] == {
            **seen,
            "jobs": {"edges": [{"node": {"id": "a-3"}}]},
        }
        assert (await b.post("/graphql", json={"query": job})).json()["data"] == {"job": None, "jobs": {"edges": []}}
