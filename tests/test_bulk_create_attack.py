"""Attacks on the chunked create (models.storage.Storage.insert_in_order): deadlines, failures and concurrency
while a create's chunks are in flight. What a caller sees must be all of the create or none of it, and a create
that failed must hold nothing in MongoDB afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.read_concern import ReadConcern

import models.storage
from models import GraphStore
from tests.conftest import TEST_DB
from tests.helpers import AUTH, gateway_app, lifespan_client

LARGE = 10_000


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.storage, "INSERT_CHUNK", 3)
    monkeypatch.setattr(models.storage, "ENCODE_SLICE", 2)


async def open_transactions(raw_db: Any) -> list[dict[str, Any]]:
    """The transactions MongoDB holds open on the test database's tasks, idle ones included."""
    admin = raw_db.client.get_database("admin", read_concern=ReadConcern("local"))
    pipeline = [
        {"$currentOp": {"idleSessions": True, "idleConnections": True, "allUsers": True}},
        {"$match": {"transaction": {"$exists": True}}},
    ]
    return await (await admin.aggregate(pipeline)).to_list(None)


@pytest.fixture
async def no_transaction_left(raw_db: Any) -> Any:
    """Kills what a failing test left open, so that later tests (and their index builds) do not wait 60 s."""
    yield
    await raw_db.client.admin.command("killAllSessions", [])


async def test_a_create_whose_deadline_passes_mid_insert_leaves_no_transaction_open(
    store, mongo_uri, tmp_path, raw_db, caplog, no_transaction_left
):
    """A 10,000-task create under deadlines short enough to pass while its chunks are in flight answers 503
    (or 200 when it made it). A 503 must leave nothing behind: no task stored, and no transaction holding the
    inserted chunks (and their ids, and the collection's lock) until MongoDB's transaction lifetime (60 s)
    ends it; else the same create sent again with its ids conflicts for a minute and index builds wait."""
    tasks = [
        {"id": 1_000_000 + i, "name": f"n{i}", "job-id": "deadline", "description": "d" * 1000} for i in range(LARGE)
    ]
    refused = 0
    for timeout_ms in (200, 300, 400, 500, 600):
        short = await GraphStore.open(mongo_uri, TEST_DB, timeout_ms=timeout_ms)
        try:
            app, _ = gateway_app(short, tmp_path)
            async with lifespan_client(app, AUTH) as http:
                response = await http.post("/tracking/task", json={"tasks": tasks})
        finally:
            await short.close()
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            await raw_db.tasks.delete_many({})
            continue
        refused += 1
        await asyncio.sleep(0.5)
        assert await raw_db.tasks.count_documents({}) == 0
        assert await open_transactions(raw_db) == [], f"a create refused after {timeout_ms} ms left its transaction"
    assert refused, "no deadline passed mid-create: shorten them"
    assert "never retrieved" not in caplog.text
