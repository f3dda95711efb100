"""A change MongoDB committed whose answer needs a read after the commit (the linked tasks a navigable task's
answer shows, a mutation's selected links): MongoDB failing that read is no refusal. REST answers 504 saying the
change was made (503 says nothing changed); GraphQL codes the field's error CHANGE_UNREAD, not UNAVAILABLE."""

from __future__ import annotations

import pytest

from models import GraphStore, StorageUnavailable, TaskDoc
from tests.helpers import graphql, task

NAVIGABLE = "navigable-execution-task"


@pytest.fixture
async def unreadable_after_commit(store, monkeypatch):
    """Navigable tasks 1 -> 2 and 3 -> 4; then every read of tasks by id fails as an outage does."""
    await store.create_tasks([task(id=1, type=NAVIGABLE), task(id=2), task(id=3, type=NAVIGABLE), task(id=4)])
    await store.add_nexts(1, [2])
    await store.add_nexts(3, [4])

    async def unavailable(self: GraphStore, ids: object) -> dict[int, TaskDoc]:
        raise StorageUnavailable("MongoDB unavailable: try again later")

    monkeypatch.setattr(GraphStore, "get_tasks", unavailable)


async def test_rest_changes_whose_answer_cannot_be_read_are_504_saying_they_were_made(
    unreadable_after_commit, client, raw_db
):
    updated = await client.put("/tracking/task/1", json={"status": "AFTER"})
    linked = await client.put("/tracking/task/1/next", params={"nextTaskId": 3})
    for answer in (updated, linked):
        assert answer.status_code == 504, answer.text
        assert answer.json()["message"].startswith("the change was made"), answer.text
    stored = await raw_db.tasks.find_one({"_id": 1})
    assert stored["status"] == "AFTER" and sorted(stored["nexts"]) == [2, 3]


async def test_a_mutation_whose_selected_links_cannot_be_read_says_its_change_was_made(
    unreadable_after_commit, client, raw_db
):
    body = await graphql(client, 'mutation { updateTask(id: "1", patch: {status: "AFTER"}) { id nexts { id } } }')
    assert body["data"] == {"updateTask": None}, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "CHANGE_UNREAD" and error["path"][:2] == ["updateTask", "nexts"], error
    assert error["message"].startswith("the change was made"), error
    assert (await raw_db.tasks.find_one({"_id": 1}))["status"] == "AFTER"
    # A query failing the same way is no change: UNAVAILABLE, as before.
    body = await graphql(client, '{ task(id: "1") { id nexts { id } } }')
    assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE", body
