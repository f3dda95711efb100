"""What MongoDB was asked: a store whose client records every command it sends (PyMongo command monitoring)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from models import GraphStore
from models.connection import make_client

READS = ("find", "aggregate", "getMore", "count", "distinct")


class CommandLog(CommandListener):
    """Each read sent, as (command name, collection), in order; only while `recording`. Change streams (the
    history writer's, subscriptions') and the getMores that follow them are no reads of a request: left out."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []
        self.sent: list[dict] = []
        """The commands of `commands`, as sent (their filters, limits and pipelines)."""
        self.recording = False
        self._pending: dict[int, tuple[str, str]] = {}
        self._cursors: set[int] = set()

    def started(self, event: CommandStartedEvent) -> None:
        name, command = event.command_name, event.command
        if name == "getMore":
            if self.recording and command["getMore"] in self._cursors:
                self.commands.append((name, command["collection"]))
            return
        target = command.get(name)
        if name == "aggregate" and target == 1:  # a database's aggregation: named by what it looks up
            target = next((stage["$lookup"]["from"] for stage in command["pipeline"] if "$lookup" in stage), None)
        if name not in READS or not isinstance(target, str):
            return
        if name == "aggregate" and any("$changeStream" in stage for stage in command.get("pipeline", [])):
            return
        self._pending[event.request_id] = (name, target)
        if self.recording:
            self.commands.append((name, target))
            self.sent.append(dict(command))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        if self._pending.pop(event.request_id, None) is not None:
            cursor = event.reply.get("cursor")
            if isinstance(cursor, dict) and cursor.get("id"):
                self._cursors.add(cursor["id"])

    def failed(self, event: CommandFailedEvent) -> None:
        self._pending.pop(event.request_id, None)

    def reads(self, collection: str) -> list[str]:
        """The read commands sent on `collection`, by name."""
        return [name for name, target in self.commands if target == collection]

    @asynccontextmanager
    async def recorded(self) -> AsyncIterator[CommandLog]:
        """Only the reads sent inside the block, from a fresh log."""
        self.commands.clear()
        self.sent.clear()
        self.recording = True
        try:
            yield self
        finally:
            self.recording = False


@asynccontextmanager
async def monitored_store(mongo_uri: str, database: str) -> AsyncIterator[tuple[GraphStore, CommandLog]]:
    """A store on `database` (prepared by the session's store) whose every command is logged."""
    log = CommandLog()
    client = make_client(mongo_uri, event_listeners=[log])
    try:
        yield GraphStore(client, client[database]), log
    finally:
        await client.close()
