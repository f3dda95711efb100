"""A WebSocket's GraphQL operations continue the trace its handshake names, read by the same rules as a request's
trace context (gateway.server_spans): a tracestate holding a token is not continued, two traceparents start a
trace of their own, and the handshake's log lines carry the caller's trace id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.gateway.tracing_setup import new_trace, served_with_logs, traced_gateway, traceparent
from tests.helpers import TOKEN, eventually
from tests.otlp import Receiver

QUERY = "query Probe { eventCursor }"


async def _probe(port: int, headers: Sequence[tuple[str, str]]) -> None:
    """One query over graphql-transport-ws, sent through a handshake with `headers`."""
    async with connect(
        f"ws://127.0.0.1:{port}/graphql",
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers=list(headers),
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": TOKEN}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert answer["type"] == "next" and "errors" not in answer["payload"], answer


async def test_a_websockets_operations_continue_its_handshakes_trace_by_a_requests_rules(
    store, mongo_uri, data_dir, receiver: Receiver, no_earlier_secrets
):
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, settings, *_),
        served_with_logs(app, settings, ("uvicorn.error",)) as (port, streams),
    ):
        kept, kept_caller = new_trace()
        await _probe(port, [*traceparent(kept, kept_caller).items(), ("tracestate", "vendor=a")])
        secret, secret_caller = new_trace()
        await _probe(port, [*traceparent(secret, secret_caller).items(), ("tracestate", f"vendor={TOKEN}")])
        first, first_caller = new_trace()
        second, second_caller = new_trace()
        twice = [("traceparent", traceparent(trace_id, caller)["traceparent"]) for trace_id, caller in
                 ((first, first_caller), (second, second_caller))]  # fmt: skip
        await _probe(port, twice)

        (continued,) = [span for span in await receiver.trace_of(kept, "query Probe") if span.name == "query Probe"]
        assert continued.parent_id == kept_caller and continued.trace_state == "vendor=a"
        spans = await receiver.trace_of(secret, "query Probe")
        (without_state,) = [span for span in spans if span.name == "query Probe"]
        assert without_state.parent_id == secret_caller and without_state.trace_state == ""
        assert all(TOKEN not in span.trace_state for span in spans)

        async def three_probes() -> bool:
            return len(receiver.named("query Probe")) == 3

        await eventually(three_probes, what="the third probe's span")
        third = {span.trace_id for span in receiver.named("query Probe")} - {kept, secret}
        assert len(third) == 1 and not {first, second} & third, "two traceparents: a trace of its own"
    accepted = [line for line in streams["text"].getvalue().splitlines() if "WebSocket /graphql" in line]
    assert len(accepted) >= 3, accepted
    assert any(f" {kept}]" in line for line in accepted), accepted
