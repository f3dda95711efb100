"""A gateway starting on a database an earlier start prepared sends no collMod: a collMod waits for every open
transaction on its collection, and every other gateway's reads and writes queue behind it meanwhile (a rolling
restart would stall the fleet while a tool held a transaction)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bson.int64 import Int64
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from models.connection import make_client, prepare_database
from tests.conftest import TEST_DB


class Sent(CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


async def test_a_start_on_a_prepared_database_sends_no_collmod_and_waits_for_no_transaction(mongo_uri, store, raw_db):
    await raw_db.tasks.insert_one({"_id": Int64(1), "nexts": [], "previous": []})
    # An earlier start, as this one will be (other tests leave the shared database's validator otherwise).
    earlier = make_client(mongo_uri)
    try:
        await prepare_database(earlier, TEST_DB)
    finally:
        await earlier.close()
    holder: Any = raw_db.client
    async with holder.start_session() as session:
        await session.start_transaction()
        await raw_db.tasks.update_one({"_id": 1}, {"$set": {"note-by-tool": 1}}, session=session)
        sent = Sent()
        client = make_client(mongo_uri, event_listeners=[sent])
        try:
            started = time.monotonic()
            await asyncio.wait_for(prepare_database(client, TEST_DB), timeout=30)
            took = time.monotonic() - started
        finally:
            await client.close()
            await session.abort_transaction()
    assert "collMod" not in sent.names, sent.names
    assert took < 10, took  # a collMod would have waited for the transaction (up to its lifetime)
