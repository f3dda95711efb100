"""How a taskEvents subscription ends, over both protocols: whatever ends it, it leaves the fan-out and the
gauges at once, is counted once on /metrics with the right outcome, and its client is told."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY

from graphql_schema.router import TrackingGraphQLRouter
from models import GraphStore
from tests.helpers import (
    START_MESSAGE,
    acknowledged,
    eventually,
    gateway_app,
    no_open_subscriptions,
    operations_counted,
    served,
    subscribed,
)


def open_subscriptions() -> float:
    return REGISTRY.get_sample_value("tracking_graphql_open_subscriptions") or 0.0


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_an_answer_that_cannot_be_sent_ends_its_subscription_as_failed_and_says_so(
    store: GraphStore,
    raw_db: Any,
    tmp_path: Any,
    protocol: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An event whose answer fails to encode (a bug): the client is told the operation is over (not left waiting
    on a subscription nobody serves), /metrics counts it once as an operation in error (not as one the client
    ended), the failure is logged once with its traceback, and the subscription leaves the fan-out."""
    caplog.set_level(logging.WARNING)
    name = f"Unencodable_{protocol.replace('-', '_')}"
    query = f'subscription {name} {{ taskEvents(jobId: "enc") {{ taskId task {{ status }} }} }}'
    encoded = TrackingGraphQLRouter.encode_json

    def encode(self: TrackingGraphQLRouter, data: object) -> str | bytes:
        text = encoded(self, data)
        if "UNENCODABLE" in str(text):
            raise ValueError("cannot encode")
        return text

    monkeypatch.setattr(TrackingGraphQLRouter, "encode_json", encode)
    app, settings = gateway_app(store, tmp_path)
    errors, ended = operations_counted(name, "error"), operations_counted(name, "ok")
    async with served(app, settings) as port:
        before = open_subscriptions()
        async with acknowledged(port, protocol) as ws:
            async with subscribed(1):
                await ws.send(json.dumps({"id": "1", "type": START_MESSAGE[protocol], "payload": {"query": query}}))
            document = {"_id": Int64(1), "job-id": "enc", "status": "UNENCODABLE", "nexts": [], "previous": []}
            await raw_db.tasks.insert_one(document)
            while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] != "complete":
                assert message["type"] in ("next", "data", "ka"), message
            assert message == {"id": "1", "type": "complete"}
            await eventually(no_open_subscriptions, what="the subscription to leave the fan-out")
            assert open_subscriptions() == before
    assert operations_counted(name, "error") == errors + 1
    assert operations_counted(name, "ok") == ended
    failures = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ValueError)]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR, [r.getMessage() for r in caplog.records]
    unretrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not unretrieved, unretrieved


REFUSED = [
    ("Invalid", 'subscription Invalid { taskEvents(jobId: "x") { noSuchField } }', None),
    # A name its document does not define is the client's text, not an operation's: counted as no name.
    ("anonymous", "subscription Known { taskEvents { taskId } }", "Nope"),
]


@pytest.mark.parametrize(("name", "query", "operation_name"), REFUSED, ids=["invalid", "unknown operation name"])
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_subscription_refused_before_it_runs_is_counted_once_as_an_error_and_logs_nothing(
    store: GraphStore,
    tmp_path: Any,
    protocol: str,
    name: str,
    query: str,
    operation_name: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The handler stops reading the operation's results after the refusal (its stream closed as one a client
    ends): that is an operation in error on /metrics, not one that ended well nor one never counted, and no
    server error is logged (not even an exception of a task nobody awaited)."""
    caplog.set_level(logging.WARNING)
    app, settings = gateway_app(store, tmp_path)
    errors, ended = operations_counted(name, "error"), operations_counted(name, "ok")
    async with (
        served(app, settings) as port,
        acknowledged(port, protocol) as ws,
    ):
        payload = {"query": query, "operationName": operation_name}
        await ws.send(json.dumps({"id": "1", "type": START_MESSAGE[protocol], "payload": payload}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert message["type"] == "error" and message["id"] == "1", message

        async def counted() -> bool:
            return operations_counted(name, "error") > errors

        await eventually(counted, what="the refused subscription counted")
    assert operations_counted(name, "error") == errors + 1
    assert operations_counted(name, "ok") == ended
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]
