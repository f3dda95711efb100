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
from tests.gateway.test_outages import DEADLINE_MS, doomed, is_stopped
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client

__all__ = ["doomed"]  # the fixture, used by name

DEADLINE_S = DEADLINE_MS / 1000


@pytest.fixture
async def frozen(doomed) -> AsyncIterator[GraphStore]:
    mongo, store = doomed
    os.kill(mongo.process.pid, signal.SIGSTOP)
    try:
        await eventually(lambda: is_stopped(mongo.process.pid), what="mongod stopped")
        yield store
    finally:
        os.kill(mongo.process.pid, signal.SIGCONT)


@pytest.fixture
async def one_deadline_s(frozen) -> float:
    """How long one read on the frozen mongod takes to fail on this machine now: the deadline, its grace and
    whatever the machine's load adds. An operation sharing one deadline takes about this long; one deadline per
    read would take one of these per read in a row (three and more in the tests here)."""
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await frozen.get_tasks([1])
    return time.monotonic() - started


@pytest.mark.slow
async def test_store_calls_in_one_operation_share_its_deadline(frozen, one_deadline_s) -> None:
    """Three reads one after the other: the first waits out the deadline, the others fail at once (each with
    a deadline of its own, they would take three)."""
    started = time.monotonic()
    with operation_deadline(frozen.timeout_s):
        for task_id in (1, 2, 3):
            with pytest.raises(StorageUnavailable):
                await frozen.get_tasks([task_id])
    assert time.monotonic() - started < 2 * one_deadline_s


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
async def test_an_operation_on_a_frozen_mongod_answers_what_it_has_on_time(
    frozen, one_deadline_s, tmp_path, compiled
) -> None:
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
    assert elapsed < 2 * one_deadline_s, (elapsed, one_deadline_s)
    assert body["data"]["doneStatuses"]  # read from the settings: answered
    assert body["data"]["job"] is None
    assert body["data"]["t"] is None
    assert {error["extensions"]["code"] for error in body["errors"]} == {"UNAVAILABLE"}
    assert {tuple(error["path"]) for error in body["errors"]} == {("job",), ("t",)}


@pytest.mark.slow
async def test_an_operation_whose_jobs_are_counted_answers_unavailable_in_one_deadline(
    frozen, one_deadline_s, tmp_path
) -> None:
    """An operation the traversal bound would refuse has its job's tasks counted first
    (graphql_schema.cost_budget): with MongoDB frozen, the count waits its deadline and the operation is
    answered UNAVAILABLE without running."""
    app, _ = gateway_app(frozen, tmp_path, graphql_max_traversal=40, graphql_max_cost=2000)
    query = '{ job(id: "j") { tasks { id nexts { nexts { id } } } } }'
    async with lifespan_client(app, AUTH) as client:
        started = time.monotonic()
        body = (await client.post("/graphql", json={"query": query})).json()
        elapsed = time.monotonic() - started
    assert elapsed < 2 * one_deadline_s, (elapsed, one_deadline_s)
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAVAILABLE"]
