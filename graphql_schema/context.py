"""Per-request context: the graph store, the bounds, and one DataLoader of tasks by id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from models import GraphStore, TaskDoc


class TokenChecker(Protocol):
    def accepts(self, presented: str | None) -> bool: ...


class Context(BaseContext):
    def __init__(self, store: GraphStore, max_traversal: int, authenticated: bool, tokens: TokenChecker) -> None:
        super().__init__()
        self.store = store
        self.tokens = tokens
        self.max_traversal = max_traversal
        self.authenticated = authenticated
        self.tasks = DataLoader[int, TaskDoc | None](load_fn=self._load_tasks)

    async def _load_tasks(self, ids: Sequence[int]) -> list[TaskDoc | None]:
        """One MongoDB round trip for every task asked for in the same tick, e.g. one level of a traversal."""
        found = await self.store.get_tasks(ids)
        return [found.get(task_id) for task_id in ids]

    def cached_tasks(self, ids: Sequence[int]) -> list[TaskDoc | None] | None:
        """The tasks this request has already fetched, or None if any of them still has to be loaded."""
        docs = []
        for task_id in ids:
            future = self.tasks.cache_map.get(task_id)
            if future is None or not future.done() or future.cancelled() or future.exception() is not None:
                return None
            docs.append(future.result())
        return docs

    def remember(self, docs: Sequence[TaskDoc]) -> None:
        """Tasks already fetched (a job's, a mutation's) need no second trip when a nested field asks again."""
        for doc in docs:
            self.tasks.prime(doc["_id"], doc, force=True)
