"""What a history writer says of itself (its lag, whether it leads, whether it is failing: /metrics and /readyz)
is true under steady changes, after a failure it got over, after losing the lease, and when it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bson.int64 import Int64

from models import HistoryWriter
from tests.gateway.test_outages import doomed, frozen
from tests.helpers import eventually, writing_history

__all__ = ["doomed"]  # the fixture, used by name

LEASE = "task_history_lease"


@contextlib.asynccontextmanager
async def steady_changes(raw_db: Any) -> AsyncIterator[list[int]]:
    """A change every 20 ms (so that no idle poll of the writer's stream comes between them) until the block
    ends; yields the count made so far."""
    made = [0]
    await raw_db.tasks.insert_one({"_id": Int64(1), "nexts": [], "previous": [], "status": "0"})

    async def change() -> None:
        while True:
            made[0] += 1
            await raw_db.tasks.update_one({"_id": 1}, {"$set": {"status": str(made[0])}})
            await asyncio.sleep(0.02)

    running = asyncio.create_task(change())
    try:
        yield made
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_under_steady_changes_the_lag_is_the_newest_change_s_age_and_a_failure_clears(raw_db, store):
    """Without an idle poll (changes keep coming), a writer that keeps up reports a lag of about its flush, not
    the time since it began to lead; one whose writes failed, then work again, is well again at its next batch,
    not once the changes stop (a load balancer would keep a busy gateway out of service)."""
    writer = HistoryWriter(store._database, "steady", flush_s=0.2, give_up_s=0.5)
    async with writing_history(raw_db, writer), steady_changes(raw_db) as made:
        await raw_db.command("collMod", "task_history", validator={"never": {"$exists": True}})
        try:

            async def failing() -> bool:
                return writer.failure is not None

            await eventually(failing, what="the writer failing")
        finally:
            await raw_db.command("collMod", "task_history", validator={})
        start = made[0]

        async def well_and_writing() -> bool:
            return writer.failure is None and made[0] > start + 150  # three seconds of changes at least

        await eventually(well_and_writing, what="the writer well again while changes go on")
        assert writer.leading
        assert writer.lag_seconds() < 2.0, writer.lag_seconds()


async def test_a_leader_that_fails_and_loses_the_lease_no_longer_says_it_leads(raw_db, store):
    """Its renewals refused (here a validator a tool put on the lease collection; in production, MongoDB out of
    its reach for less than it takes to give up), another writer takes the lease: the first must not go on
    saying it leads (the fleet's `tracking_history_writer_leading` would sum to 2)."""
    first = HistoryWriter(store._database, "first", lease_s=1.0, flush_s=0.2, give_up_s=120.0)  # no hand-over
    second = HistoryWriter(store._database, "second", lease_s=1.0, flush_s=0.2)
    async with writing_history(raw_db, first):
        assert (await raw_db[LEASE].find_one({"_id": "writer"}))["owner"] == "first"
        await raw_db.command("collMod", LEASE, validator={"owner": {"$ne": "first"}})
        try:
            async with writing_history(raw_db, second):

                async def moved() -> bool:
                    return (await raw_db[LEASE].find_one({"_id": "writer"}))["owner"] == "second"

                await eventually(moved, what="the lease moving to the second writer")

                async def one_leader() -> bool:
                    return (first.leading, second.leading) == (False, True)

                await eventually(one_leader, what="only the second writer saying it leads")
        finally:
            await raw_db.command("collMod", LEASE, validator={})


async def test_a_writer_stopped_gives_its_lease_up_at_once(raw_db, store):
    """A rolling restart: the writer stopped releases the lease, and another takes it without waiting for it to
    expire (LEASE_S)."""
    writer = HistoryWriter(store._database, "stopping", lease_s=30.0)
    running = asyncio.create_task(writer.run())

    async def leading() -> bool:
        lease = await raw_db[LEASE].find_one({"_id": "writer"})
        return lease is not None and lease["owner"] == "stopping" and writer.leading

    try:
        await eventually(leading, what="the writer leading")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    successor = HistoryWriter(store._database, "successor", lease_s=30.0)
    assert await successor._take_lease(), "the lease was still held: the stopped writer kept it for 30 s"


async def test_a_leader_whose_mongodb_stops_answering_says_it_leads_no_longer_than_its_lease(doomed):
    """mongod frozen (SIGSTOP): the leader's read hangs until the driver gives up (many seconds), while its lease
    runs out and another gateway may take it; the leader says it leads only as long as the lease it last took
    or renewed is its own by its clock."""
    mongo, store = doomed
    writer = HistoryWriter(store._database, "frozen-out", lease_s=1.0, flush_s=0.2)
    running = asyncio.create_task(writer.run())
    try:

        async def leading() -> bool:
            return writer.leading

        await eventually(leading, what="the writer leading")
        async with frozen(mongo):
            frozen_at = asyncio.get_running_loop().time()

            async def not_leading() -> bool:
                return not writer.leading

            await eventually(not_leading, timeout=10, what="the writer no longer saying it leads")
            assert asyncio.get_running_loop().time() - frozen_at < 1.0 + 2.0  # its lease, and a margin for load
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
