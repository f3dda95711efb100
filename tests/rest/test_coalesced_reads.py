"""GET /tracking/task/{id} under concurrency: reads that arrive together are sent to MongoDB as one query
(models.coalesce), and each request still gets the answer it would get alone: its task, its 404, its 304, its
format, whatever tools stored; every read reflects the stored document (nothing is cached)."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from bench.profiler import count_task_reads
from models import GraphStore, TaskDoc
from models.coalesce import BATCH_MAX

NAVIGABLE = "navigable-execution-task"


@pytest.fixture
async def http(client):
    return client


async def store_tasks(http: httpx.AsyncClient, raw_db) -> None:
    """Tasks 1-20 (task 1 navigable, linked to 2 and 3) through the API, and what tools write with PyMongo: id
    21 as a double with wrong-typed fields, id 22 as Decimal128 (no task id the API can name), id 23 with a link
    array that is no array."""
    tasks = [{"id": i, "job-id": "j", "status": f"S{i}", "name": f"task {i}"} for i in range(1, 21)]
    tasks[0] |= {"type": NAVIGABLE, "nexts": {"tasks": [tasks[1], tasks[2]]}}
    del tasks[1:3]
    response = await http.post("/tracking/task", json={"tasks": tasks})
    assert response.status_code == 200, response.text
    await raw_db.tasks.insert_many(
        [
            {"_id": 21.0, "status": 42, "name": True, "nexts": [], "previous": []},
            {"_id": Decimal128("22"), "status": "READY", "nexts": [], "previous": []},
            {"_id": Int64(23), "status": "READY", "nexts": "garbage", "previous": [Int64(1), "x"]},
        ],
        bypass_document_validation=True,
    )


def requests_of_the_batch(etag_of_5: str) -> list[tuple[str, dict[str, str]]]:
    """32 GETs: 23 ids (tasks, poison documents, missing ids), some twice, one conditional, some in XML."""
    ids = [*range(1, 24), 900, 901, 22, 7, 7]
    requests: list[tuple[str, dict[str, str]]] = [(f"/tracking/task/{i}", {}) for i in ids]
    requests.append(("/tracking/task/5", {"If-None-Match": etag_of_5}))
    requests.append(("/tracking/task/6", {"If-None-Match": '"not-its-etag"'}))
    requests.append(("/tracking/task/1", {"Accept": "application/xml"}))
    requests.append(("/tracking/task/902", {"Accept": "application/xml"}))
    assert len(requests) == 32
    return requests


def answer(response: httpx.Response) -> tuple[int, str | None, str | None, bytes]:
    return response.status_code, response.headers.get("etag"), response.headers.get("content-type"), response.content


async def test_concurrent_gets_share_queries_and_each_gets_its_own_answer(http, raw_db):
    await store_tasks(http, raw_db)
    etag_of_5 = (await http.get("/tracking/task/5")).headers["etag"]
    requests = requests_of_the_batch(etag_of_5)
    alone = [answer(await http.get(path, headers=headers)) for path, headers in requests]

    together: list[httpx.Response] = []

    async def all_at_once() -> None:
        together.extend(await asyncio.gather(*(http.get(path, headers=headers) for path, headers in requests)))

    reads = await count_task_reads(raw_db, all_at_once)
    assert [answer(response) for response in together] == alone
    # One query for the 32 reads, and one per navigable task answered (task 1, JSON and XML, for its nexts): the
    # requests arrive in the same turn of the event loop here; 32 one-task queries before coalescing.
    assert reads <= 4, reads
    pairs = zip(requests, together, strict=True)
    by_path = {(path, tuple(headers.items())): response for (path, headers), response in pairs}
    assert by_path[("/tracking/task/5", (("If-None-Match", etag_of_5),))].status_code == 304
    assert by_path[("/tracking/task/6", (("If-None-Match", '"not-its-etag"'),))].json()["status"] == "S6"
    assert by_path[("/tracking/task/900", ())].json()["message"] == "task 900 not found"
    assert by_path[("/tracking/task/22", ())].status_code == 404  # a Decimal128 _id is no task id
    assert by_path[("/tracking/task/21", ())].json() == {"id": 21, "status": "42", "name": "true"}
    assert by_path[("/tracking/task/23", ())].json() == {"id": 23, "status": "READY"}
    first = by_path[("/tracking/task/1", ())].json()
    assert [task["id"] for task in first["nexts"]["tasks"]] == [2, 3]
    assert by_path[("/tracking/task/1", (("Accept", "application/xml"),))].text.startswith("<?xml")
    assert b"<code>404</code>" in by_path[("/tracking/task/902", (("Accept", "application/xml"),))].content


async def test_concurrent_gets_reflect_every_write_acknowledged_before_them(http, raw_db):
    await store_tasks(http, raw_db)
    for round_ in range(5):
        await raw_db.tasks.update_one({"_id": 4}, {"$set": {"status": f"written by a tool {round_}"}})
        answers = await asyncio.gather(*(http.get("/tracking/task/4") for _ in range(8)))
        assert {response.json()["status"] for response in answers} == {f"written by a tool {round_}"}
        await raw_db.tasks.delete_one({"_id": 9 + round_})
        assert (await http.get(f"/tracking/task/{9 + round_}")).status_code == 404


async def test_a_read_whose_deadline_passes_leaves_the_others_their_answer(store: GraphStore, raw_db):
    await raw_db.tasks.insert_one({"_id": Int64(1), "status": "READY", "nexts": [], "previous": []})

    async def impatient() -> None:
        async with asyncio.timeout(0):
            await store.get_task(1)

    patient = [store.get_task(1) for _ in range(3)]
    results = await asyncio.gather(impatient(), *patient, return_exceptions=True)
    assert isinstance(results[0], TimeoutError)
    assert [doc["status"] for doc in results[1:]] == ["READY"] * 3


async def test_a_crowd_of_reads_is_sent_in_bounded_queries(store: GraphStore, raw_db):
    await raw_db.tasks.insert_many([{"_id": Int64(i), "nexts": [], "previous": []} for i in range(1, 2501)])
    found: list[TaskDoc] = []

    async def crowd() -> None:
        found.extend(await asyncio.gather(*(store.get_task(i) for i in range(1, 2501))))

    assert await count_task_reads(raw_db, crowd) == math.ceil(2500 / BATCH_MAX)
    assert [doc["_id"] for doc in found] == list(range(1, 2501))
