"""Closing what talks to MongoDB within a bound, whether MongoDB answers or not.

Closing asks MongoDB things: a client ends its sessions (endSessions) and kills the cursors it still holds
(killCursors), and a task reading a change stream, once cancelled, kills its cursor. Each of those first selects a
server, and with MongoDB gone each would wait the whole server-selection timeout, one after the other: a gateway
whose mongod died waited out at least one such deadline before exiting, and one more for each step that had
something to ask. Here every such wait shares one bound, and a bound of zero (MongoDB known gone) asks MongoDB
nothing at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import pymongo

from models.stored_task import MongoClient

log = logging.getLogger(__name__)

NO_WAIT_S = 0.001
"""The bound that lets nothing wait for a server: pymongo reads a timeout of 0 as no timeout at all."""
SETTLE_S = 0.1
"""The least a cancelled task is given to end, bound or not: a turn or two of the event loop (the wait ends as
soon as the task does)."""
RECANCEL_WAIT_S = 1.0
"""How long a task cancelled a second time (past its bound) has to end: it then stops waiting for MongoDB at
once; one that still runs swallows cancellations, and is left to the event loop's own end."""


class Bound:
    """One deadline shared by every step of a shutdown: each step gets what is left of it."""

    def __init__(self, within_s: float) -> None:
        self._ends = time.monotonic() + max(within_s, 0.0)

    def left(self) -> float:
        return max(self._ends - time.monotonic(), 0.0)


async def stop_task(task: asyncio.Task[Any] | None, bound: Bound) -> None:
    """Cancel `task` and wait for it to end within `bound`; past it, cancel it again (a task cancelled while it
    closes a change stream waits to select a server for the killCursors) and wait a little more. Whatever the
    task ended with is logged, never raised (a shutdown, or a subscription's end, goes on whatever the data holds);
    a cancellation of the caller is never swallowed."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait({task}, timeout=max(bound.left(), SETTLE_S))
    if not task.done():
        log.warning("%s still closing what it read past its bound; cancelled again", task.get_name())
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_WAIT_S)
    if not task.done():
        log.error("%s ignores cancellation: left running", task.get_name())
    elif not task.cancelled() and task.exception() is not None:
        log.error("background task %s had failed", task.get_name(), exc_info=task.exception())


async def close_clients(clients: Iterable[MongoClient | None], bound: Bound) -> None:
    """Close each client (its sessions ended and cursors killed on the server, best effort, then its connections
    and monitors), every server selection of it within what is left of `bound`."""
    for client in clients:
        if client is not None:
            with pymongo.timeout(max(bound.left(), NO_WAIT_S)):
                await client.close()
