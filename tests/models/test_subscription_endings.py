"""How a subscription ends in the fan-out (models.fanout), on a real MongoDB: whatever ends it, it leaves the
fan-out at once, its catch-up stopped."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from bson.int64 import Int64

from models import GraphStore, StorageUnavailable
from models.subscriber import Subscriber
from tests.helpers import eventually, no_open_subscriptions


async def test_a_catch_up_that_fails_unexpectedly_ends_its_subscription(
    store: GraphStore, raw_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the catch-up read must not leave its subscription waiting forever for events that never come,
    registered with the fan-out: it ends with UNAVAILABLE (resume with after), as a failing shared stream does."""
    after = await store.event_cursor("broken")
    await raw_db.tasks.insert_one({"_id": Int64(1), "job-id": "broken", "nexts": [], "previous": []})

    def broken(subscriber: Subscriber, *args: Any) -> None:
        raise RuntimeError("a bug in the catch-up")

    monkeypatch.setattr(Subscriber, "catch_up", broken)
    events = store.watch_task_events("broken", after, resume_within_s=30)
    async with contextlib.aclosing(events):
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(anext(events), 30)
    await eventually(no_open_subscriptions, what="the subscription left the fan-out")
