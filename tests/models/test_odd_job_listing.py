"""The jobs listing pages by job, newest activity first: tasks whose `job-id` a tool stored as no string (arrays,
documents, numbers, JavaScript) form groups of their own, which are no job and must take no place on a page, so a
page holds `first` jobs whenever that many follow, for a caller scoped to some jobs and one allowed every job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson.code import Code
from bson.int64 import Int64

from models import JobFilter
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
        assert pages == [["a-1"], ["a-2"]]
    else:  # MongoDB's reading of an array (models.scopes) may list its strings: a page is never short all the same
        assert all(len(page) == 1 for page in pages), pages
        assert [page for page in pages if page[0] in ("a-1", "a-2")] == [["a-1"], ["a-2"]]


async def test_the_listing_still_reads_one_index_key_per_job(raw_db):
    """Leaving the groups out after the $group keeps the plan the listing is built for (models.jobs.listing). On
    a collection of its own: an index that ever held an array (as the test above stores) stays multikey, and a
    multikey index offers no DISTINCT_SCAN whatever the pipeline."""
    tasks = raw_db.listing_plan
    await tasks.create_index([("job-id", 1), ("update-timestamp", -1)], name=JOBS_INDEX)
    await tasks.insert_many(
        [{"_id": Int64(task_id), "job-id": f"a-{task_id % 3}", "update-timestamp": OLD} for task_id in range(1, 10)]
    )
    pipeline = jobs_pipeline(1, None, JobFilter(), None, scope_ranges(("a-",)))
    explain = {"aggregate": tasks.name, "pipeline": pipeline, "cursor": {}, "hint": JOBS_INDEX}
    plan = await raw_db.command({"explain": explain, "verbosity": "queryPlanner"})
    rows = await (await tasks.aggregate(pipeline, hint=JOBS_INDEX)).to_list(None)
    await tasks.drop()
    assert "DISTINCT_SCAN" in str(plan), plan
    assert [row["_id"] for row in rows] == ["a-0", "a-1"]
