"""A create's answer is rendered while MongoDB inserts its tasks, a slice at a time
(models.storage.Storage.insert_in_order). The slice is made tiny here so that small creates cross many slice
boundaries; what callers see and what is stored must be what reading the tasks gives, and a failed insert leaves
nothing, whatever it had inserted before failing."""

from __future__ import annotations

import pytest
from bson.int64 import Int64

import models.storage
from tests.helpers import AUTH, assert_link_invariant, gateway_app, lifespan_client

NAVIGABLE = "navigable-execution-task"


@pytest.fixture(autouse=True)
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.storage, "ALONGSIDE_SLICE", 2)


def nested_body() -> dict:
    """A navigable task whose eight nexts (one with its own navigable sub-graph) span several slices, then two
    plain tasks: 13 tasks."""
    inner = {"name": "inner", "type": NAVIGABLE, "nexts": {"tasks": [{"name": "deep-1"}, {"name": "deep-2"}]}}
    children = [{"name": f"child-{i}", "status": "READY"} for i in range(7)] + [inner]
    return {
        "tasks": [
            {"name": "top", "type": NAVIGABLE, "job-id": "bulk", "nexts": {"tasks": children}},
            {"name": "after-1", "job-id": "bulk"},
            {"name": "after-2", "job-id": "bulk", "status": "DONE"},
        ]
    }


async def test_the_answer_of_a_create_is_what_reading_each_task_gives(client, raw_db):
    response = await client.post("/tracking/task", json=nested_body())
    assert response.status_code == 200, response.text
    answered = response.json()["tasks"]
    assert [item.get("name") for item in answered] == [
        "top", *[f"child-{i}" for i in range(7)], "inner", "deep-1", "deep-2", "after-1", "after-2",
    ]  # fmt: skip
    for item in answered:
        read = await client.get(f"/tracking/task/{item['id']}")
        assert read.json() == item
    top, inner = answered[0], answered[8]
    assert [child["name"] for child in top["nexts"]["tasks"]] == [*(f"child-{i}" for i in range(7)), "inner"]
    assert [child["name"] for child in inner["nexts"]["tasks"]] == ["deep-1", "deep-2"]
    assert await raw_db.tasks.count_documents({"job-id": "bulk"}) == 13
    await assert_link_invariant(raw_db)


async def test_xml_answers_a_create_in_request_order(client):
    body = "<tasks>" + "".join(f"<task><name>x{i}</name></task>" for i in range(8)) + "</tasks>"
    response = await client.post(
        "/tracking/task", content=body, headers={"Content-Type": "application/xml", "Accept": "application/xml"}
    )
    assert response.status_code == 200, response.text
    names = [part.split("</name>")[0] for part in response.text.split("<name>")[1:]]
    assert names == [f"x{i}" for i in range(8)]


async def test_an_id_taken_midway_rolls_back_what_was_inserted_and_the_create_goes_on(client, raw_db):
    """A tool wrote id 8 without moving the id counter: the first try inserts ids 1-7, fails on 8, and is rolled
    back whole; the retry takes fresh ids (1-10 stay a gap: ids are never reused). Nothing of the failed try
    remains."""
    await raw_db.tasks.insert_one({"_id": Int64(8), "name": "tool's", "nexts": [], "previous": []})
    response = await client.post(
        "/tracking/task", json={"tasks": [{"name": f"n{i}", "job-id": "j"} for i in range(10)]}
    )
    assert response.status_code == 200, response.text
    ids = [item["id"] for item in response.json()["tasks"]]
    assert ids == list(range(11, 21))
    stored = await raw_db.tasks.find({}, {"_id": 1}).sort("_id").to_list()
    assert [doc["_id"] for doc in stored] == [8, *ids]
    assert (await raw_db.tasks.find_one({"_id": 8}))["name"] == "tool's"


async def test_a_task_mongodb_cannot_hold_is_a_400_and_stores_nothing(store, tmp_path, raw_db):
    """Its 8th task is over MongoDB's 16 MiB document limit (the body limit raised to let it through): MongoDB
    refuses the insert while the answer is being rendered beside it; the error names the limit."""
    app, _ = gateway_app(store, tmp_path, max_body_bytes=64 * 1024 * 1024)
    tasks = [{"name": f"n{i}"} for i in range(7)] + [{"name": "x" * (17 * 1024 * 1024)}]
    async with lifespan_client(app, AUTH) as http:
        response = await http.post("/tracking/task", json={"tasks": tasks})
    assert response.status_code == 400, response.text
    assert "16 MiB" in response.json()["message"]
    assert await raw_db.tasks.count_documents({}) == 0
