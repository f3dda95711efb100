"""A connection at TRACKING_SUBSCRIPTIONS_PER_CONNECTION operations in flight has every further start refused at
once, before its document is parsed or a task is made for it: a client that sends starts as fast as it can (one
read-only token, a few seconds) cannot take the gateway's loop and memory; the subscriptions it has open are
served on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY

from graphql_schema.schema import TrackingSchema
from tests.helpers import START_MESSAGE, acknowledged, gateway_app, next_message, served, subscribed

FLOOD = 300
QUERY = 'subscription Watch { taskEvents(jobId: "flood") { kind taskId } }'


def refused_on_connections() -> float:
    return REGISTRY.get_sample_value("tracking_subscriptions_refused_total", {"bound": "connection"}) or 0.0


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_starts_past_a_connection_s_bound_are_refused_before_any_work(
    store: Any, tmp_path: Any, raw_db: Any, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    streams = 0
    stream = TrackingSchema.stream

    async def counting(self: TrackingSchema, *args: Any, **kwargs: Any) -> Any:
        nonlocal streams
        streams += 1
        return await stream(self, *args, **kwargs)

    monkeypatch.setattr(TrackingSchema, "stream", counting)
    app, settings = gateway_app(store, tmp_path, subscriptions_per_connection=2)
    async with served(app, settings) as port, acknowledged(port, protocol) as ws:
        start = START_MESSAGE[protocol]
        async with subscribed(2):
            for op in ("1", "2"):
                await ws.send(json.dumps({"id": op, "type": start, "payload": {"query": QUERY}}))
        refused_before = refused_on_connections()
        for number in range(FLOOD):  # sent without waiting for an answer
            await ws.send(json.dumps({"id": f"f{number}", "type": start, "payload": {"query": QUERY}}))
        errors: list[dict[str, Any]] = []
        while len(errors) < FLOOD:
            message = await next_message(ws, 30)
            assert message["type"] == "error" and message["id"].startswith("f"), message
            errors.append(message)
        payloads = [m["payload"][0] if isinstance(m["payload"], list) else m["payload"] for m in errors]
        assert {p["extensions"]["code"] for p in payloads} == {"TOO_MANY_SUBSCRIPTIONS"}
        assert all("TRACKING_SUBSCRIPTIONS_PER_CONNECTION" in p["message"] for p in payloads)
        assert streams == 2, "no refused start was parsed, validated or run"
        assert refused_on_connections() - refused_before == FLOOD
        await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "flood", "nexts": [], "previous": []})
        served_ops: set[str] = set()
        while served_ops != {"1", "2"}:
            message = await next_message(ws, 30)
            assert message["type"] in ("next", "data") and message["payload"]["data"]["taskEvents"]["taskId"] == "1"
            served_ops.add(message["id"])
