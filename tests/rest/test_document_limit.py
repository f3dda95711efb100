"""A task a tool stored near MongoDB's 16 MiB document limit: a change or a link that would take it past the
limit is refused as the caller's (REST 400, GraphQL BAD_USER_INPUT) naming the limit, and changes nothing; it was
an internal error."""

from __future__ import annotations

from typing import Any

import bson
from bson.int64 import Int64

from tests.helpers import graphql, task

LIMIT = 16 * 1024 * 1024


def near_the_limit(task_id: int) -> dict[str, Any]:
    """A task document 10 bytes under MongoDB's limit."""
    doc: dict[str, Any] = {"_id": Int64(task_id), "job-id": "big", "status": "S", "nexts": [], "previous": []}
    doc["name"] = ""
    doc["name"] = "x" * (LIMIT - 10 - len(bson.encode(doc)))
    assert len(bson.encode(doc)) == LIMIT - 10
    return doc


async def test_a_change_or_a_link_past_the_limit_is_a_400_and_changes_nothing(store, client, raw_db):
    await raw_db.tasks.insert_one(near_the_limit(4), bypass_document_validation=True)
    await store.create_tasks([task(id=5, job_id="big")])
    stored_before = {doc["_id"]: doc async for doc in raw_db.tasks.find({"_id": {"$in": [4, 5]}})}

    linked = await client.put("/tracking/task/5/next", params={"nextTaskId": 4})
    changed = await client.put("/tracking/task/4", json={"status": "S" * 64})
    for answer in (linked, changed):
        assert answer.status_code == 400, answer.text
        assert "16 MiB" in answer.json()["message"]
    mutation = 'mutation { updateTask(id: "4", patch: {status: "%s"}) { id } }' % ("S" * 64)
    body = await graphql(client, mutation)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert "16 MiB" in body["errors"][0]["message"]

    assert {doc["_id"]: doc async for doc in raw_db.tasks.find({"_id": {"$in": [4, 5]}})} == stored_before
