"""What MongoDB is asked for one link addition (PyMongo command monitoring): the endpoints' read, the link
writes and the commit, as a raw two-update transaction asks; the lock bump only when the cycle search read
tasks beyond the endpoints (models.locks says why that is enough to refuse every cycle)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from models import GraphStore
from models.connection import make_client
from tests.conftest import TEST_DB
from tests.helpers import assert_link_invariant, task


class Commands(CommandListener):
    """Every command sent but change streams' (the history writer's), as (name, collection or None)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    def started(self, event: CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if event.command_name in ("aggregate", "getMore", "killCursors"):
            return
        self.sent.append((event.command_name, target if isinstance(target, str) else None))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def monitored(store: GraphStore, mongo_uri: str) -> AsyncIterator[tuple[GraphStore, Commands]]:
    commands = Commands()
    client = make_client(mongo_uri, event_listeners=[commands])
    try:
        yield GraphStore(client, client[TEST_DB]), commands
    finally:
        await client.close()


async def test_linking_tasks_without_other_links_asks_what_a_raw_transaction_asks(monitored, raw_db) -> None:
    store, commands = monitored
    await store.create_tasks([task(id=1, job_id="j"), task(id=2, job_id="j")])
    commands.sent.clear()
    assert [doc["_id"] for doc in await store.add_nexts(1, [2])] == [2]
    assert commands.sent == [("find", "tasks"), ("update", "tasks"), ("commitTransaction", None)]
    assert await raw_db.counters.count_documents({"_id": {"$regex": "^task-links"}}) == 0
    assert await assert_link_invariant(raw_db) == {(1, 2)}


async def test_an_addition_whose_search_reads_further_bumps_the_jobs_it_read(monitored, raw_db) -> None:
    """2 has a next task (3, job k) and 1 a previous one (4, job m): the search reads 3 (the smaller side first),
    so the jobs of 1, 2 and 3 are bumped, in one write, before the links are."""
    store, commands = monitored
    await store.create_tasks(
        [task(id=1, job_id="j"), task(id=2, job_id="j"), task(id=3, job_id="k"), task(id=4, job_id="m")]
    )
    await store.add_nexts(2, [3])
    await store.add_nexts(4, [1])
    commands.sent.clear()
    await store.add_nexts(1, [2])
    assert commands.sent == [
        ("find", "tasks"),
        ("find", "tasks"),
        ("update", "counters"),
        ("update", "tasks"),
        ("commitTransaction", None),
    ]
    locks = {doc["_id"]: doc["seq"] async for doc in raw_db.counters.find({"_id": {"$regex": "^task-links"}})}
    assert locks == {"task-links:j": 1, "task-links:k": 1}
    assert await assert_link_invariant(raw_db) == {(1, 2), (2, 3), (4, 1)}


async def test_a_link_already_stored_writes_nothing(monitored, raw_db) -> None:
    store, commands = monitored
    await store.create_tasks([task(id=1), task(id=2)])
    await store.add_nexts(1, [2])
    before = await raw_db.tasks.find_one({"_id": 1})
    commands.sent.clear()
    await store.add_nexts(1, [2])
    assert commands.sent == [("find", "tasks"), ("commitTransaction", None)]
    assert await raw_db.tasks.find_one({"_id": 1}) == before
