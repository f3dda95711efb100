"""Small builders and checks shared by the tests."""

from __future__ import annotations

from typing import Any

from models import TaskCreate


def task(**fields: Any) -> TaskCreate:
    """A TaskCreate from API field names (underscores stand for hyphens: job_id -> job-id)."""
    return TaskCreate.model_validate({name.replace("_", "-"): value for name, value in fields.items()})


async def stored_links(raw_db) -> dict[int, tuple[list[int], list[int]]]:
    return {
        doc["_id"]: (doc.get("nexts", []), doc.get("previous", []))
        async for doc in raw_db.tasks.find({}, {"nexts": 1, "previous": 1})
    }


async def assert_link_invariant(raw_db) -> set[tuple[int, int]]:
    """CONTRACT §3: b in a.nexts exactly when a in b.previous, and every linked id exists. Returns the edges."""
    links = await stored_links(raw_db)
    edges = {(a, b) for a, (nexts, _) in links.items() for b in nexts}
    mirrored = {(a, b) for b, (_, previous) in links.items() for a in previous}
    assert edges == mirrored, f"nexts/previous disagree: {edges ^ mirrored}"
    dangling = {i for edge in edges for i in edge} - links.keys()
    assert not dangling, f"links to missing tasks {dangling}"
    for a, (nexts, previous) in links.items():
        assert len(nexts) == len(set(nexts)), f"task {a} repeats a next id"
        assert len(previous) == len(set(previous)), f"task {a} repeats a previous id"
    return edges
