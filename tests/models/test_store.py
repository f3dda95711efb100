"""The graph store against a real MongoDB: every operation, its failure modes, and the stored layout."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime

import pytest
from bson.int64 import Int64

from models import InvalidOperation, TaskAlreadyExists, TaskNotFound, TaskPatch, TraversalTooLarge
from tests.helpers import assert_link_invariant, task


async def chain(store, *ids: int) -> None:
    """Create tasks with the given ids and link them in order."""
    await store.create_tasks([task(id=i) for i in ids])
    for a, b in itertools.pairwise(ids):
        await store.add_nexts(a, [b])


# ---- create ----------------------------------------------------------------------------------------------------


async def test_create_assigns_ascending_ids_and_stores_the_contract_layout(store, raw_db):
    created = await store.create_tasks(
        [task(status="READY", job_id="j1", start_time="2026-11-22T19:00:00.123456+01:00", number_of_retries=3)]
    )
    assert [doc["_id"] for doc in created] == [1]
    stored = await raw_db.tasks.find_one({"_id": 1})
    assert await raw_db.tasks.count_documents({"_id": {"$type": "long"}}) == 1
    assert await raw_db.tasks.count_documents({"number-of-retries": {"$type": "int"}}) == 1
    assert await raw_db.tasks.count_documents({"start-time": {"$type": "date"}}) == 1
    assert stored["job-id"] == "j1"
    assert stored["status"] == "READY"
    assert stored["start-time"] == datetime(2026, 11, 22, 18, 0, 0, 123000, tzinfo=UTC)
    assert stored["type"] == "task"
    assert stored["root"] is True
    assert stored["nexts"] == [] and stored["previous"] == []
    assert stored["creation-timestamp"] == stored["update-timestamp"]
    second = await store.create_tasks([task(), task()])
    assert [doc["_id"] for doc in second] == [2, 3]


async def test_client_ids_raise_the_counter_so_server_ids_never_collide(store, raw_db):
    await store.create_tasks([task(id=100)])
    created = await store.create_tasks([task()])
    assert created[0]["_id"] == 101
    counter = await raw_db.counters.find_one({"_id": "tasks"})
    assert counter["seq"] == 101


async def test_a_create_refused_for_an_id_taken_leaves_the_counter_as_it_was(store, raw_db):
    """A refusal changes nothing: a create naming a stored id beside a far larger one moved the counter past the
    larger one (by billions, with requests that were all refused)."""
    await store.create_tasks([task(id=2)])
    before = await raw_db.counters.find_one({"_id": "tasks"})
    with pytest.raises(TaskAlreadyExists):
        await store.create_tasks([task(), task(id=4_000_000_000), task(id=2)])
    assert await raw_db.counters.find_one({"_id": "tasks"}) == before
    assert await raw_db.tasks.count_documents({}) == 1


async def test_server_ids_skip_ids_written_directly_by_other_tools(store, raw_db):
    await store.create_tasks([task()])
    await raw_db.tasks.insert_one({"_id": Int64(2), "nexts": [], "previous": []})
    created = await store.create_tasks([task()])
    assert created[0]["_id"] == 3


async def test_nested_nexts_are_created_depth_first_and_linked_after_their_parent(store, raw_db):
    tree = task(
        type="navigable-execution-task",
        job_id="job",
        nexts={"tasks": [{"name": "a", "nexts": {"tasks": [{"name": "a1"}]}}, {"name": "b", "job-id": "other"}]},
    )
    created = await store.create_tasks([tree, task(name="after")])
    assert [doc.get("name") for doc in created] == [None, "a", "a1", "b", "after"]
    ids = [doc["_id"] for doc in created]
    assert ids == [1, 2, 3, 4, 5]
    parent, a, a1, b, after = await raw_db.tasks.find({}).sort("_id").to_list()
    assert parent["nexts"] == [2, 4] and parent["previous"] == [] and parent["root"] is True
    assert a["previous"] == [1] and a["nexts"] == [3] and a["root"] is False
    assert a1["previous"] == [2] and a1["job-id"] == "job"
    assert b["job-id"] == "other", "a nested task's own job-id wins over its parent's"
    assert after["root"] is True and after["previous"] == []
    await assert_link_invariant(raw_db)


async def test_explicit_root_is_kept(store):
    created = await store.create_tasks([task(root=False, nexts={"tasks": [{"root": True}]})])
    assert [doc["root"] for doc in created] == [False, True]


async def test_existing_id_refuses_the_whole_request(store, raw_db):
    await store.create_tasks([task(id=7)])
    with pytest.raises(TaskAlreadyExists, match="task 7 already exists"):
        await store.create_tasks([task(id=8), task(nexts={"tasks": [{"id": 7}]})])
    assert await raw_db.tasks.count_documents({}) == 1


async def test_repeated_id_in_one_request_is_refused(store, raw_db):
    with pytest.raises(InvalidOperation, match="task id 5 appears more than once"):
        await store.create_tasks([task(id=5), task(nexts={"tasks": [{"id": 5}]})])
    assert await raw_db.tasks.count_documents({}) == 0


async def test_server_timestamps_from_the_client_are_ignored(store):
    created = await store.create_tasks([task(creation_timestamp="2001-01-01T00:00:00Z")])
    assert created[0]["creation-timestamp"].year >= 2026


# ---- read ------------------------------------------------------------------------------------------------------


async def test_get_task_and_unknown_id(store):
    await store.create_tasks([task(id=3, name="three")])
    assert (await store.get_task(3))["name"] == "three"
    with pytest.raises(TaskNotFound, match="task 4 not found"):
        await store.get_task(4)


async def test_get_tasks_returns_only_existing(store):
    await store.create_tasks([task(id=1), task(id=2)])
    assert sorted(await store.get_tasks([1, 2, 9])) == [1, 2]
    assert await store.get_tasks([]) == {}


async def test_list_nexts_and_previous_with_filters(store, raw_db):
    await store.create_tasks(
        [
            task(id=1),
            task(id=2, status="DONE"),
            task(id=3, status="FAILED", type="execution-task"),
            task(id=4, status="RUNNING"),
        ]
    )
    await raw_db.tasks.insert_one({"_id": Int64(5), "status": "DONE", "nexts": [], "previous": []})
    await store.add_nexts(1, [4, 3, 2, 5])
    assert [d["_id"] for d in await store.list_nexts(1)] == [2, 3, 4, 5]
    assert [d["_id"] for d in await store.list_nexts(1, ["DONE", "FAILED"])] == [2, 3, 5]
    assert [d["_id"] for d in await store.list_nexts(1, None, "execution-task")] == [3]
    assert [d["_id"] for d in await store.list_nexts(1, None, "task")] == [2, 4, 5]
    assert [d["_id"] for d in await store.list_nexts(1, ["DONE"], "task")] == [2, 5]
    assert [d["_id"] for d in await store.list_previous(3)] == [1]
    assert await store.list_previous(3, ["NOPE"]) == []
    assert await store.list_nexts(2) == []
    with pytest.raises(TaskNotFound):
        await store.list_nexts(99)
    with pytest.raises(TaskNotFound):
        await store.list_previous(99)


async def test_list_job_tasks_with_root_filter(store):
    await store.create_tasks(
        [task(id=9, job_id="J", nexts={"tasks": [{"id": 4}]}), task(id=2, job_id="J"), task(id=3, job_id="K")]
    )
    assert [d["_id"] for d in await store.list_job_tasks("J")] == [2, 4, 9]
    assert [d["_id"] for d in await store.list_job_tasks("J", root=True)] == [2, 9]
    assert [d["_id"] for d in await store.list_job_tasks("J", root=False)] == [4]
    assert await store.task_page("J", 10, statuses=["X"]) == ([], False)
    assert await store.list_job_tasks("unknown") == []


# ---- update ----------------------------------------------------------------------------------------------------


async def test_update_merges_replaces_and_clears(store, raw_db):
    created = await store.create_tasks([task(id=1, name="n", description="d", status="READY")])
    patch = TaskPatch.model_validate({"status": "DONE", "description": None, "finish-time": 1_700_000_000_123})
    updated = await store.update_task(1, patch)
    assert updated["status"] == "DONE"
    assert updated["name"] == "n"
    assert "description" not in updated
    assert updated["finish-time"] == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert updated["creation-timestamp"] == created[0]["creation-timestamp"]
    assert updated["update-timestamp"] >= created[0]["update-timestamp"]
    assert await raw_db.tasks.find_one({"_id": 1}) == updated


async def test_update_keeps_links_and_resets_a_cleared_type(store):
    await chain(store, 1, 2)
    updated = await store.update_task(1, TaskPatch.model_validate({"type": None, "id": 1}))
    assert updated["type"] == "task"
    assert updated["nexts"] == [2]


async def test_update_refuses_a_mismatched_body_id_and_unknown_tasks(store):
    await store.create_tasks([task(id=1)])
    with pytest.raises(InvalidOperation, match="body id 2 does not match path id 1"):
        await store.update_task(1, TaskPatch.model_validate({"id": 2}))
    with pytest.raises(TaskNotFound):
        await store.update_task(5, TaskPatch.model_validate({"status": "X"}))


# ---- links -----------------------------------------------------------------------------------------------------


async def test_add_nexts_links_both_sides_and_returns_every_next(store, raw_db):
    await store.create_tasks([task(id=i) for i in (1, 2, 3, 4)])
    assert [d["_id"] for d in await store.add_nexts(1, [3])] == [3]
    assert [d["_id"] for d in await store.add_nexts(1, [2, 3, 2])] == [2, 3]
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == [3, 2]
    assert (await raw_db.tasks.find_one({"_id": 2}))["previous"] == [1]
    assert await raw_db.tasks.count_documents({"nexts": {"$type": "long"}}) == 1
    assert await assert_link_invariant(raw_db) == {(1, 2), (1, 3)}


async def test_add_previous_is_the_mirror_image(store, raw_db):
    await store.create_tasks([task(id=i) for i in (1, 2, 3)])
    assert [d["_id"] for d in await store.add_previous(3, [2, 1])] == [1, 2]
    assert await assert_link_invariant(raw_db) == {(1, 3), (2, 3)}


async def test_adding_links_to_unknown_tasks_changes_nothing(store, raw_db):
    await store.create_tasks([task(id=1), task(id=2)])
    with pytest.raises(TaskNotFound, match="tasks 8, 9 not found"):
        await store.add_nexts(1, [2, 9, 8])
    with pytest.raises(TaskNotFound, match="task 7 not found"):
        await store.add_previous(7, [1])
    assert await assert_link_invariant(raw_db) == set()


async def test_self_links_and_cycles_are_refused(store, raw_db):
    await chain(store, 1, 2, 3, 4)
    with pytest.raises(InvalidOperation, match="task 2 cannot be linked to itself"):
        await store.add_nexts(2, [2])
    with pytest.raises(InvalidOperation, match="linking task 4 to next task 1 would close a cycle"):
        await store.add_nexts(4, [1])
    with pytest.raises(InvalidOperation, match="would close a cycle"):
        await store.add_previous(2, [3])
    with pytest.raises(InvalidOperation, match="would close a cycle"):
        await store.add_nexts(3, [4, 2])
    assert await assert_link_invariant(raw_db) == {(1, 2), (2, 3), (3, 4)}
    await store.add_nexts(1, [4])  # a shortcut is no cycle
    assert (1, 4) in await assert_link_invariant(raw_db)


async def test_remove_links_both_sides_and_missing_links_are_no_ops(store, raw_db):
    await store.create_tasks([task(id=i) for i in (1, 2, 3)])
    await store.add_nexts(1, [2, 3])
    await store.remove_nexts(1, [2, 2])
    assert await assert_link_invariant(raw_db) == {(1, 3)}
    before = await raw_db.tasks.find_one({"_id": 2})
    await store.remove_nexts(2, [3])  # no such link
    assert await raw_db.tasks.find_one({"_id": 2}) == before
    await store.remove_previous(3, [1])
    assert await assert_link_invariant(raw_db) == set()


async def test_removing_links_with_unknown_ids_is_not_found(store, raw_db):
    await chain(store, 1, 2)
    with pytest.raises(TaskNotFound, match="task 5 not found"):
        await store.remove_nexts(5, [1])
    with pytest.raises(TaskNotFound, match="task 6 not found"):
        await store.remove_previous(2, [1, 6])
    assert await assert_link_invariant(raw_db) == {(1, 2)}


# ---- delete ----------------------------------------------------------------------------------------------------


async def test_delete_removes_the_task_and_every_link_to_it(store, raw_db):
    await store.create_tasks([task(id=i) for i in (1, 2, 3)])
    await store.add_nexts(2, [3])
    await store.add_previous(2, [1])
    await store.delete_task(2)
    assert await raw_db.tasks.find_one({"_id": 2}) is None
    assert await assert_link_invariant(raw_db) == set()
    with pytest.raises(TaskNotFound):
        await store.delete_task(2)


async def test_delete_cleans_links_written_inconsistently_by_other_tools(store, raw_db):
    await store.create_tasks([task(id=1), task(id=2)])
    await raw_db.tasks.update_one({"_id": 1}, {"$push": {"nexts": Int64(2)}})  # only one side written
    await store.delete_task(2)
    assert (await raw_db.tasks.find_one({"_id": 1}))["nexts"] == []


# ---- concurrency -----------------------------------------------------------------------------------------------


async def test_concurrent_links_on_one_task_are_all_kept(store, raw_db):
    await store.create_tasks([task(id=i) for i in range(1, 22)])
    await asyncio.gather(
        *(store.add_nexts(1, [i]) for i in range(2, 12)), *(store.add_previous(1, [i]) for i in range(12, 22))
    )
    edges = await assert_link_invariant(raw_db)
    assert edges == {(1, i) for i in range(2, 12)} | {(i, 1) for i in range(12, 22)}


async def test_concurrent_links_that_together_close_a_cycle_cannot_both_win(store, raw_db):
    # b->c and d->a exist; a->b and c->d added at once would make a->b->c->d->a.
    await store.create_tasks([task(id=i) for i in (1, 2, 3, 4)])
    await store.add_nexts(2, [3])
    await store.add_nexts(4, [1])
    results = await asyncio.gather(store.add_nexts(1, [2]), store.add_nexts(3, [4]), return_exceptions=True)
    refused = [r for r in results if isinstance(r, InvalidOperation)]
    assert len(refused) == 1, results
    edges = await assert_link_invariant(raw_db)
    assert len(edges) == 3


# ---- walks -----------------------------------------------------------------------------------------------------


async def walk_ids(store, task_id: int, direction: str, max_depth: int | None = None) -> list[int]:
    found = await store.walk(await store.get_task(task_id), direction, max_depth, bound=1000)
    return [doc["_id"] for doc in found]


async def test_walks_go_level_by_level_by_id_and_survive_cycles_tools_wrote(store, raw_db):
    # 1 -> {3, 2} -> 4 -> 5, and a tool's link 5 -> 1 closing a cycle
    await store.create_tasks([task(id=i) for i in range(1, 6)])
    for a, b in [(1, 3), (1, 2), (2, 4), (3, 4), (4, 5)]:
        await store.add_nexts(a, [b])
    await raw_db.tasks.update_one({"_id": 5}, {"$push": {"nexts": Int64(1)}})
    await raw_db.tasks.update_one({"_id": 1}, {"$push": {"previous": Int64(5)}})
    assert await walk_ids(store, 1, "nexts") == [2, 3, 4, 5]
    assert await walk_ids(store, 1, "nexts", max_depth=2) == [2, 3, 4]
    assert await walk_ids(store, 4, "previous") == [2, 3, 1, 5]
    assert await walk_ids(store, 4, "previous", max_depth=0) == []
    stored = await raw_db.tasks.find_one({"_id": 2})
    assert (await store.walk(await store.get_task(1), "nexts", None, 100))[0] == stored  # whole tasks, as stored


async def test_a_walk_too_large_for_graphlookup_goes_level_by_level(store, raw_db, caplog):
    """$graphLookup holds what it finds in memory, at most 100 MB (fixed in MongoDB 6.0): 110 tasks of 1 MB
    below one task outgrow it, and the walk reads them level by level instead."""
    caplog.set_level(logging.INFO, "models.walks")
    big = "x" * 1_000_000
    await store.create_tasks([task(id=1)])
    for first in range(2, 112, 10):
        await store.create_tasks([task(id=i, description=big) for i in range(first, first + 10)])
        await store.add_nexts(1, list(range(first, first + 10)))
    await store.create_tasks([task(id=200)])
    await store.add_nexts(111, [200])
    assert await walk_ids(store, 1, "nexts", max_depth=None) == [*range(2, 112), 200]
    assert "walking level by level" in caplog.text
    with pytest.raises(TraversalTooLarge, match="more than 100 tasks"):
        await store.walk(await store.get_task(1), "nexts", None, bound=100)
