"""A GraphQL operation's shared deadline (models.deadline.operation_deadline) passing while MongoDB answers is the
operation's own length, not an outage: OperationDeadlinePassed (DEADLINE_EXCEEDED, naming the setting), never
UNAVAILABLE, which sends callers and operators to look at MongoDB. Once MongoDB has failed one of the
operation's reads, what the deadline cuts afterwards is UNAVAILABLE (tests/graphql_schema/test_graphql_deadline.py
freezes mongod)."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_schema.errors import describe_domain_error
from models import OperationDeadlinePassed
from models.connection import make_client
from models.deadline import bounded, operation_deadline
from tests.conftest import TEST_DB

SLEEPERS = "operation_deadline_sleepers"


class Sleeper:
    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.timeout_s = 10.0

    @bounded
    async def sleep(self, ms: int) -> None:
        await self.collection.find_one({"$where": f"sleep({ms}) || true"})


async def test_a_read_cut_by_its_operation_s_deadline_is_deadline_exceeded(mongo_uri, raw_db):
    await raw_db[SLEEPERS].delete_many({})
    await raw_db[SLEEPERS].insert_one({"_id": 1})
    client = make_client(mongo_uri)
    sleeper = Sleeper(client[TEST_DB][SLEEPERS])
    try:
        with operation_deadline(0.3), pytest.raises(OperationDeadlinePassed) as cut:
            await sleeper.sleep(2000)  # MongoDB answers, but later than the operation may wait
        with operation_deadline(0), pytest.raises(OperationDeadlinePassed):
            await sleeper.sleep(0)  # started once the deadline had passed: refused before anything is sent
    finally:
        await client.close()
    message, code = describe_domain_error(cut.value)
    assert code == "DEADLINE_EXCEEDED"
    assert "TRACKING_MONGODB_TIMEOUT_MS (300 ms)" in message and "ask for less" in message
