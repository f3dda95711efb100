"""A MongoDB command whose sender stops waiting for it (cancelled) publishes no PyMongo event
that ends its span: the store call ends it itself, marked `cancelled`, so that a cut request's trace shows the
command it was cut in (and the span is not kept until MAX_OPEN_COMMANDS others pile up)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import StatusCode

from gateway.recorded_spans import RecordingTracerProvider
from models.connection import make_client
from models.deadline import bounded
from models.tracing import store_tracer
from tests.conftest import TEST_DB
from tests.helpers import eventually

SLEEPERS = "command_span_sleepers"


class Collected(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class Sleeper:
    """A store-like owner of a bounded call whose command MongoDB keeps busy (server-side JavaScript's sleep)."""

    def __init__(self, collection: Any, timeout_s: float) -> None:
        self.collection = collection
        self.timeout_s = timeout_s

    @bounded
    async def sleep(self) -> None:
        await self.collection.find_one({"$where": "sleep(3000) || true"})


async def _sleeping(raw_db: Any) -> bool:
    operations = await (
        await raw_db.client.admin.aggregate([{"$currentOp": {}}, {"$match": {"ns": f"{TEST_DB}.{SLEEPERS}"}}])
    ).to_list()
    return bool(operations)


async def test_a_store_call_cancelled_mid_command_ends_its_command_span_marked_cancelled(mongo_uri, raw_db):
    """(A call out of time is cut by the driver's own timeout, which publishes the command's failure.)"""
    await raw_db[SLEEPERS].delete_many({})
    await raw_db[SLEEPERS].insert_one({"_id": 1})
    collected = Collected()
    provider = RecordingTracerProvider(ALWAYS_ON, Resource.create({}), collected)
    client = make_client(mongo_uri, tracer=store_tracer(provider))
    sleeper = Sleeper(client[TEST_DB][SLEEPERS], timeout_s=30.0)
    try:
        with provider.get_tracer("test").start_as_current_span("request"):
            call = asyncio.create_task(sleeper.sleep())  # the request's span current in it too
            await eventually(lambda: _sleeping(raw_db), what="the command running on MongoDB")
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        commands = [span for span in collected.spans if span.name == f"find {SLEEPERS}"]
        assert len(commands) == 1, [span.name for span in collected.spans]
        (command,) = commands
        assert command.status.status_code is StatusCode.ERROR
        assert command.attributes is not None
        assert command.attributes["error.type"] == "cancelled", command.attributes
    finally:
        await client.close()
