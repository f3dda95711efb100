"""What each streamed result carries now that the schema's extensions are looked up once per operation, not per
result (graphql_schema.stream_extensions): every event of a subscription, not only the first, goes through the
error masking and coding, and answers over WebSocket carry the extensions' results as over HTTP."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from graphql_schema import events
from models import GraphStore, TaskPatch
from tests.helpers import (
    AUTH,
    eventually,
    gateway_app,
    next_event,
    next_message,
    no_open_subscriptions,
    served,
    subscribed,
    task,
)
from tests.models.test_fanout import connection, subscribe

STATUS = "subscription($jobId: String) { taskEvents(jobId: $jobId) { task { status } } }"


@pytest.mark.parametrize("failure", [RuntimeError, ValueError, TypeError])
async def test_an_unexpected_failure_on_a_later_event_is_masked_coded_and_logged(
    store: GraphStore, tmp_path: Any, monkeypatch: Any, caplog: pytest.LogCaptureFixture, failure: type[Exception]
) -> None:
    """Whatever the bug raises: a ValueError or a TypeError out of the event stream is no variable a scalar would
    not parse, to be answered as BAD_USER_INPUT with its message and not logged."""
    caplog.set_level(logging.ERROR, logger="gateway.graphql")
    app, settings = gateway_app(store, tmp_path)
    converted = events.as_event
    calls = 0

    def failing_on_the_third(event: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise failure("secret internals of the third event")
        return converted(event)

    monkeypatch.setattr(events, "as_event", failing_on_the_third)
    await store.create_tasks([task(id=1, job_id="masked", status="S0")])
    async with served(app, settings) as port, connection(port) as ws:
        async with subscribed():
            await subscribe(ws, "1", "masked", query=STATUS)
        for n in (1, 2, 3):
            await store.update_task(1, TaskPatch.model_validate({"status": f"S{n}"}))
        assert (await next_event(ws))["task"] == {"status": "S1"}
        assert (await next_event(ws))["task"] == {"status": "S2"}
        raw = json.dumps(failed := await next_message(ws))
        assert "secret" not in raw
        assert failed["type"] == "next" and failed["id"] == "1", failed
        error = {"message": "internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        assert [{k: v for k, v in e.items() if k in error} for e in failed["payload"]["errors"]] == [error]
        assert (await next_message(ws))["type"] == "complete"
        # Ended, it leaves the fan-out at once, its connection still open: not when its stream is collected.
        await eventually(no_open_subscriptions, what="the failed subscription to leave the fan-out")
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], failure)]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]


async def test_a_query_over_websocket_reports_its_cost_as_over_http(store: GraphStore, tmp_path: Any) -> None:
    app, settings = gateway_app(store, tmp_path)
    await store.create_tasks([task(id=1, job_id="costed")])
    query = '{ task(id: "1") { id status } }'
    async with served(app, settings) as port, connection(port) as ws:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            over_http = (await http.post("/graphql", json={"query": query})).json()
        await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": query}}))
        answer = await next_message(ws)
        assert answer["type"] == "next", answer
        assert answer["payload"]["data"] == over_http["data"]
        assert answer["payload"]["extensions"]["cost"] == over_http["extensions"]["cost"]
        assert (await next_message(ws))["type"] == "complete"
