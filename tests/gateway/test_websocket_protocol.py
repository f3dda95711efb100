"""The WebSocket protocol (gateway.websocket_protocol), on a real server and MongoDB: a connection whose peer
stopped reading and answers no ping is dropped, and gives its subscriptions back."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from bson.int64 import Int64
from prometheus_client import REGISTRY

from models import GraphStore
from models.fanout import LiveLimits
from tests.conftest import TEST_DB
from tests.helpers import eventually, gateway_app, served, subscribed
from tests.models.test_fanout import LARGE_QUERY, Inbox, _tiny_receive_buffer, connection, subscribe

pytestmark = pytest.mark.hostile

PING_INTERVAL_S = 8.0
"""Long enough for the stuck peer's window to shut before the first ping."""
PING_TIMEOUT_S = 1.0


def open_subscriptions() -> float:
    """Subscriptions the gateways of this process serve (/metrics' tracking_graphql_open_subscriptions)."""
    return REGISTRY.get_sample_value("tracking_graphql_open_subscriptions") or 0.0


async def test_a_peer_that_stops_reading_is_dropped_and_its_subscription_no_longer_counts(
    store, mongo_uri, tmp_path, raw_db
):
    """A subscriber that reads nothing more, on a socket whose window is shut, blocks the gateway's sends to it.
    Once its keepalive ping goes unanswered the connection is dropped (not left waiting to flush forever), so
    its subscription ends and no longer counts against TRACKING_SUBSCRIPTIONS_MAX: the one place of a gateway
    serving one subscription is free for another caller."""
    gateway = await GraphStore.open(mongo_uri, TEST_DB, live=LiveLimits(buffer=4, max_subscriptions=1))
    try:
        await _served_to_one_stuck_peer_then_another(gateway, tmp_path, raw_db)
    finally:
        await gateway.close()


async def _served_to_one_stuck_peer_then_another(gateway: GraphStore, tmp_path: Any, raw_db: Any) -> None:
    app, settings = gateway_app(gateway, tmp_path)
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "stuck", "nexts": [], "previous": []})
    before = open_subscriptions()
    async with served(app, settings, ws_ping_interval=PING_INTERVAL_S, ws_ping_timeout=PING_TIMEOUT_S) as port:
        sock = _tiny_receive_buffer()
        sock.connect(("127.0.0.1", port))
        connected = time.monotonic()
        # The client neither reads past one message nor pings: it only stops reading.
        async with connection(port, sock=sock, max_queue=1, ping_interval=None) as stuck:
            async with subscribed(1):
                await subscribe(stuck, "1", "stuck", None, LARGE_QUERY)
            for _ in range(200):
                if not gateway.live.subscribers():
                    break  # ended as too slow: the gateway's sends to it wait for a window that stays shut
                # Incompressible: WebSocket messages are deflated, and a repeated text would fill no buffer.
                large = os.urandom(256 * 1024).hex()
                await raw_db.tasks.update_one({"_id": Int64(1)}, {"$set": {"description": large}})
                await asyncio.sleep(0)
            assert not gateway.live.subscribers(), "the stuck subscriber was never ended as too slow"
            # A keepalive timeout while the gateway can still flush what it holds closes cleanly: what is tested
            # is the one that comes once nothing can be flushed.
            assert time.monotonic() - connected < PING_INTERVAL_S, "the window shut only after the first ping"

            async def gone() -> bool:
                return open_subscriptions() == before

            await eventually(gone, timeout=60, what="the stuck connection's subscription given back")
            async with connection(port) as other:
                inbox = Inbox(other)
                async with subscribed(1):
                    await subscribe(other, "1", "stuck")
                await raw_db.tasks.update_one({"_id": Int64(1)}, {"$set": {"status": "SEEN"}})

                async def served_other() -> bool:
                    return bool(inbox.events["1"]) or bool(inbox.errors["1"])

                await eventually(served_other, what="the other caller's subscription served")
                assert not inbox.errors["1"], inbox.errors["1"]
                await inbox.stop()
