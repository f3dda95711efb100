"""The poison corpus: documents a tool writes with PyMongo (raw BSON where needed, the validator bypassed as a tool
with the right may), and the checks that every reader still answers them."""

from __future__ import annotations

from typing import Any

import bson
import httpx
import xmltodict
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

from models.stored_task import FIELD_KINDS

NEVER = DatetimeMS(2**63 - 1)  # Java's new Date(Long.MAX_VALUE)
BEFORE_YEAR_1 = DatetimeMS(-62_135_596_800_000 - 86_400_000)
MB = 1024 * 1024
TASK_QUERY = "id status name jobId startTime finishTime numberOfRetries root nexts { id } previous { id }"
JOB_QUERY = (
    "id taskCount tasks { id status name startTime } edges { from to } statusCounts { status count } "
    "summary { firstStart lastFinish lastUpdate doneCount progress } taskPage(first: 5) { edges { node { id } } }"
)


def raw_task(task_id: int, **fields: Any) -> dict[str, Any]:
    return {"_id": Int64(task_id), "nexts": [], "previous": [], **fields}


def with_invalid_utf8(doc: dict[str, Any], marker: str) -> RawBSONDocument:
    """`doc` as BSON in which the string `marker` is replaced by bytes that are not UTF-8 (same length)."""
    encoded = bson.encode(doc)
    assert encoded.count(marker.encode()) == 1
    return RawBSONDocument(encoded.replace(marker.encode(), b"\xff\xfe" + marker.encode()[2:]))


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"inner": value}
    return value


async def plant_corpus(raw_db) -> dict[str, list[int]]:
    """The poison corpus, written as a tool would (the validator is bypassed, as a tool with the right may):
    job -> ids planted in it."""
    tasks = raw_db.tasks
    bypass = {"bypass_document_validation": True}
    dates = {"job-id": "poison", "start-time": NEVER, "finish-time": BEFORE_YEAR_1}
    await tasks.insert_one(raw_task(9001, **dates), **bypass)
    await tasks.insert_one(
        with_invalid_utf8(raw_task(9002, **{"job-id": "poison", "name": "XXname", "status": "XXstat"}), "XXname")
    )
    await tasks.insert_one(raw_task(9003, **{"job-id": "poison", "nexts": [Int64(10**6 + i) for i in range(100_000)]}))
    await tasks.insert_one(raw_task(9004, **{"job-id": "poison", "nexts": "9005", "previous": {"a": 1}}), **bypass)
    await tasks.insert_one(raw_task(9005, **{"job-id": "poison", "nexts": [Int64(9006), Int64(9006)]}), **bypass)
    await tasks.insert_one(raw_task(9006, **{"job-id": "poison", "previous": [Int64(9005)]}))
    await tasks.insert_one(raw_task(9007, **{"job-id": "poison", "details": nested(90), "status": nested(5)}), **bypass)
    odd = [ObjectId(), Decimal128("1.5"), Binary(b"\x00"), Code("x"), Regex("a"), MinKey(), MaxKey(), Timestamp(1, 1)]
    odd += [DBRef("c", 1), float("nan"), Int64(2**62), [1, "a"], {"k": "v"}, NEVER]
    for offset, value in enumerate(odd):
        fields = dict.fromkeys(FIELD_KINDS, value) | {"job-id": "poison"}
        await tasks.insert_one(raw_task(9100 + offset, **fields), **bypass)
    # The job's own id undecodable: the job is listed under its U+FFFD spelling.
    await tasks.insert_one(with_invalid_utf8(raw_task(9200, **{"job-id": "XXjob"}), "XXjob"))
    # Ids of other numeric or unhashable types (7001 is taken by the Decimal128), job ids of other types, a link
    # array holding a document, a negative id linking to a task.
    await tasks.insert_one({"_id": Decimal128("9301"), "job-id": "poison", "nexts": [], "previous": []}, **bypass)
    await tasks.insert_one({"_id": {"a": 1}, "job-id": "poison", "nexts": [], "previous": []}, **bypass)
    await tasks.insert_one(raw_task(9302, **{"job-id": Code("poison")}), **bypass)
    await tasks.insert_one(raw_task(9303, **{"job-id": ["poison", "other"]}), **bypass)
    await tasks.insert_one(raw_task(9304, **{"job-id": "poison", "nexts": [{"a": 1}]}), **bypass)
    await tasks.insert_one(raw_task(-5, **{"job-id": "poison", "nexts": [Int64(9006)]}), **bypass)
    return {"poison": [9001, 9002, 9003, 9004, 9005, 9006, 9007, *range(9100, 9100 + len(odd)), 9302, 9303, 9304]}


async def assert_every_read_answers(http: httpx.AsyncClient, task_ids: list[int], jobs: list[str]) -> None:
    """REST (JSON and XML) and GraphQL reads of each task, its job and the jobs list: no server error."""
    for task_id in task_ids:
        for accept in ("application/json", "application/xml"):
            answer = await http.get(f"/tracking/task/{task_id}", headers={"Accept": accept})
            assert answer.status_code == 200, (task_id, accept, answer.text[:300])
            if accept == "application/xml":
                xmltodict.parse(answer.content)  # well-formed whatever was stored
        await assert_graphql_ok(http, f'{{ task(id: "{task_id}") {{ {TASK_QUERY} }} }}')
    for job in jobs:
        for accept in ("application/json", "application/xml"):
            answer = await http.get(f"/tracking/{job}/task/roots", headers={"Accept": accept})
            assert answer.status_code == 200, (job, accept, answer.text[:300])
        await assert_graphql_ok(http, f'{{ job(id: "{job}") {{ {JOB_QUERY} }} }}')
    await assert_graphql_ok(http, "{ jobs(first: 50) { edges { node { id taskCount summary { lastUpdate } } } } }")


async def assert_graphql_ok(http: httpx.AsyncClient, query: str) -> dict[str, Any]:
    answer = await http.post("/graphql", json={"query": query})
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert "errors" not in body, (query, body["errors"])
    return dict(body["data"])


async def recorded(raw_db, task_id: int, status: str) -> bool:
    return await raw_db.task_history.find_one({"task": task_id, "status": status}) is not None
