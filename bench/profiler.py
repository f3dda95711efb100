"""How many times MongoDB itself read `tasks` while something ran, by its database profiler: what "one round
trip per level" claims are checked with, in the tests and in the benchmark."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase


async def count_task_reads(
    db: AsyncDatabase[Any], action: Callable[[], Awaitable[object]], collections: tuple[str, ...] = ("tasks",)
) -> int:
    """Queries and getMores on `db`'s `tasks` (or `collections`) while `action` runs, change streams' left out,
    and aggregations of the database that look them up (models.history_reads' page of each task).
    Profiling is on (level 2) only meanwhile."""
    await db.command("profile", 0)
    await db.system.profile.drop()
    await db.command("profile", 2)
    try:
        await action()
    finally:
        await db.command("profile", 0)
    namespaces = [f"{db.name}.{collection}" for collection in collections]
    looked_up = {"op": "command", "command.aggregate": 1, "command.pipeline.$lookup.from": {"$in": collections}}
    operations = db.system.profile.find(
        {"$or": [{"ns": {"$in": namespaces}, "op": {"$in": ["query", "getmore"]}}, looked_up]},
        {"originatingCommand.pipeline": 1},
    )
    return len([operation async for operation in operations if not _of_a_change_stream(operation)])


def _of_a_change_stream(operation: dict[str, Any]) -> bool:
    """A getMore of a change stream (the history writer's, live events'): the server's own following of changes,
    which may end in the window by chance, not a read of what ran."""
    pipeline = (operation.get("originatingCommand") or {}).get("pipeline") or []
    return any(isinstance(stage, dict) and "$changeStream" in stage for stage in pipeline)
