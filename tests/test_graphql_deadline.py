"""One deadline per GraphQL operation (graphql_schema.deadline, models.deadline.operation_deadline): every store
call of a query shares TRACKING_MONGODB_TIMEOUT_MS; with mongod frozen (SIGSTOP: alive, connected, answering
nothing) an operation answers on time, with what it has and UNAVAILABLE for the rest."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from models import GraphStore, StorageUnavailable
from models.deadline import operation_deadline
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client
from tests.test_outages import DEADLINE_MS, doomed, is_stopped

__all__ = ["doomed"]  # the fixture, used by name

DEADLINE_S = DEADLINE_MS / 1000
SLACK_S = 1.5  # the driver's grace (models.deadline.DEADLINE_GRACE_S) and a loaded machine


@pytest.fixture
async def frozen(doomed) -> AsyncIterator[GraphStore]:
    mongo, store = doomed
    os.kill(mongo.process.pid, signal.SIGSTOP)
    try:
        await eventually(lambda: is_stopped(mongo.process.pid), what="mongod stopped")
        yield store
    finally:
        os.kill(mongo.process.pid, signal.SIGCONT)


@pytest.mark.slow
async def test_store_calls_in_one_operation_share_its_deadline(frozen) -> None:
    """Three reads one after the other: the first waits out the deadline, the others fail at once (each with
    a deadline of its own, they would take three)."""
    started = time.monotonic()
    with operation_deadline(frozen.timeout_s):
        for task_id in (1, 2, 3):
            with pytest.raises(StorageUnavailable):
                await frozen.get_tasks([task_id])
    assert time.monotonic() - started < DEADLINE_S + SLACK_S


@pytest.mark.slow
async def test_outside_an_operation_each_call_has_its_own_deadline(frozen) -> None:
    """REST requests and the store's other callers keep a deadline per call."""
    started = time.monotonic()
    for task_id in (1, 2):
        with pytest.raises(StorageUnavailable):
            await frozen.get_tasks([task_id])
    assert time.monotonic() - started >= 2 * DEADLINE_S


@pytest.mark.slow
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "generic"])
async def test_an_operation_on_a_frozen_mongod_answers_what_it_has_on_time(frozen, tmp_path, compiled) -> None:
    app, _ = gateway_app(frozen, tmp_path, graphql_compiled=compiled)
    query = (
        '{ doneStatuses job(id: "j") { id tasks { id history { kind } } } '
        't: task(id: "1") { id descendants { id history { kind } } } }'
    )
    async with lifespan_client(app, AUTH) as client:
        started = time.monotonic()
        answer = await client.post("/graphql", json={"query": query})
        elapsed = time.monotonic() - started
    body = answer.json()
    assert elapsed < DEADLINE_S + SLACK_S, elapsed
    assert body["data"]["doneStatuses"]  # read from the settings: answered
    assert body["data"]["job"] is None
    assert body["data"]["t"] is None
    assert {error["extensions"]["code"] for error in body["errors"]} == {"UNAVAILABLE"}
    assert {tuple(error["path"]) for error in body["errors"]} == {("job",), ("t",)}


@pytest.mark.slow
async def test_an_operation_whose_jobs_are_counted_answers_unavailable_in_one_deadline(frozen, tmp_path) -> None:
    """An operation the traversal bound would refuse has its job's tasks counted first
    (graphql_schema.cost_budget): with MongoDB frozen, the count waits its deadline and the operation is
    answered UNAVAILABLE without running."""
    app, _ = gateway_app(frozen, tmp_path, graphql_max_traversal=40, graphql_max_cost=2000)
    query = '{ job(id: "j") { tasks { id nexts { nexts { id } } } } }'
    async with lifespan_client(app, AUTH) as client:
        started = time.monotonic()
        body = (await client.post("/graphql", json={"query": query})).json()
        elapsed = time.monotonic() - started
    assert elapsed < DEADLINE_S + SLACK_S, elapsed
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAVAILABLE"]
