"""Fixtures of the GraphQL tests: the compiled path's pair of gateways on one seeded job."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.graphql_schema.compiled_pair import BOUND, EQUIVALENCE_BUDGET, history_entries, stored_task
from tests.helpers import AUTH, gateway_app, lifespan_client

GENERATED_ALIASES_AT_MOST = 100
"""More than any selection test_graphql_compiled_generated.py draws holds."""


@pytest.fixture
async def seeded(raw_db) -> None:
    tasks = [stored_task(i) for i in range(1, 31)]
    del tasks[6]["status"]  # a task without a status: counted as null
    await raw_db.tasks.insert_many(tasks)
    await raw_db.tasks.insert_many([stored_task(i, **{"job-id": "too-big"}) for i in range(100, 100 + BOUND + 1)])
    await raw_db.task_history.insert_many(history_entries())


@pytest.fixture
async def clients(store, tmp_path, seeded) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A gateway with the compiled path and one without, on the same database; a budget the generated walks fit
    (nested walks with history pages cost more than the default's floor on so small a traversal bound), and an
    alias bound they fit too (two levels of walks, each task's fields and history aliased, reach 69 aliases:
    past the default 30, a drawn selection was refused instead of compared)."""
    budget = {
        "graphql_max_traversal": BOUND,
        "graphql_max_cost": EQUIVALENCE_BUDGET,
        "graphql_max_aliases": GENERATED_ALIASES_AT_MOST,
    }
    compiled, _ = gateway_app(store, tmp_path / "a", **budget)
    generic, _ = gateway_app(store, tmp_path / "b", graphql_compiled=False, **budget)
    async with lifespan_client(compiled, AUTH) as one, lifespan_client(generic, AUTH) as other:
        yield one, other
