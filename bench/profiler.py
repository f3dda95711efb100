"""How many times MongoDB itself read `tasks` while something ran, by its database profiler: what "one round
trip per level" claims are checked with, in the tests and in the benchmark."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase


async def count_task_reads(
    db: AsyncDatabase[Any], action: Callable[[], Awaitable[object]], collections: tuple[str, ...] = ("tasks",)
) -> int:
    """Queries and getMores on `db`'s `tasks` (or `collections`) while `action` runs. Profiling is on (level 2)
    only meanwhile."""
    await db.command("profile", 0)
    await db.system.profile.drop()
    await db.command("profile", 2)
    try:
        await action()
    finally:
        await db.command("profile", 0)
    namespaces = [f"{db.name}.{collection}" for collection in collections]
    return await db.system.profile.count_documents({"ns": {"$in": namespaces}, "op": {"$in": ["query", "getmore"]}})
