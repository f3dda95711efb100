"""A resuming subscription's catch-up: its events after its cursor, read from a change stream of its own (MongoDB
replays the oplog) until it hands over to the shared stream without a gap or a repeat (models.subscriber).

At most TRACKING_SUBSCRIPTION_CATCHUPS catch-ups read at once (the subscriptions' client has a connection for
each), and a catch-up waiting for its reader to make room closes its stream meanwhile: hundreds of tabs resuming
at once after a restart take turns, and none holds a connection it is not reading from."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pymongo.errors import OperationFailure, PyMongoError

from models.changes import Idle, StreamRequest, read_changes
from models.deadline import UNAVAILABLE_MESSAGE, unavailable
from models.errors import StorageUnavailable
from models.events import (
    SUBSCRIBER_FIELDS,
    WATCH_RETRY_S,
    cursor_expired,
    event_of,
    jobs_of,
    listed_jobs_of,
    refuses_resume_point,
    stream_request,
)
from models.stored_task import Collection
from models.subscriber import Subscriber

log = logging.getLogger(__name__)

RESUME_TOKEN_NOT_FOUND = 280
"""ChangeStreamFatalError, as MongoDB refuses a resume point its stream does not hold: gone, or an event the
stream's filter drops."""
CATCH_UP_POLL_MS = 100
"""How long one getMore of a catch-up waits: a catch-up that has read everything hands over at its next answer."""


class CatchUps:
    """The catch-ups of one fan-out, `slots` of them reading at once."""

    def __init__(self, tasks: Collection, full_document: str, slots: int) -> None:
        self._tasks = tasks
        self._full_document = full_document
        self._slots = asyncio.Semaphore(slots)
        self.reading = 0
        """Catch-ups reading their stream now (/metrics)."""

    async def run(self, subscriber: Subscriber, after: str) -> None:
        """`subscriber`'s events after `after` from a change stream of its own, until it hands over (or ends it:
        CURSOR_EXPIRED when MongoDB cannot resume there, UNAVAILABLE past its resume window)."""
        by_job = subscriber.job_id
        request = self._request(by_job)
        failing_since: float | None = None
        while subscriber.catching_up:
            await subscriber.room()
            try:
                async with self._slots:
                    self.reading += 1
                    try:
                        await _read(subscriber, request, by_job)
                    finally:
                        self.reading -= 1
                failing_since = None
                continue
            except OperationFailure as error:
                if error.code == RESUME_TOKEN_NOT_FOUND and by_job is not None:
                    # The cursor is another job's event (a dashboard that followed every job opens one): a stream
                    # filtered by job cannot resume at an event its filter drops. Read every job's, keep its own.
                    by_job, request = None, self._request(None)
                    continue
                if refuses_resume_point(error):
                    subscriber.end(cursor_expired())
                    return
                failure: Exception = error
            except PyMongoError as error:
                failure = error
            except Exception:  # a bug must not leave it waiting forever (as in the shared stream)
                log.exception("a subscription's catch-up failed")
                subscriber.end(StorageUnavailable(UNAVAILABLE_MESSAGE))
                return
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > subscriber.resume_within_s:
                window = subscriber.resume_within_s
                subscriber.end(unavailable(f"change stream not resumable within {window:g}s", failure))
                return
            log.info("catch-up change stream interrupted (%s); resuming after its last event", failure)
            await asyncio.sleep(WATCH_RETRY_S)

    def _request(self, job_id: str | None) -> StreamRequest:
        """The catch-up's stream: of one job's events when `job_id` is given (MongoDB filters them), else of every
        job's (`_read` keeps the subscription's own)."""
        return stream_request(
            self._tasks, job_id, SUBSCRIBER_FIELDS, self._full_document, CATCH_UP_POLL_MS, routed=True
        )


async def _read(subscriber: Subscriber, request: StreamRequest, by_job: str | None) -> None:
    """Read from `subscriber.read_to` until the hand-over, or until the buffer is full (the stream is closed while
    the reader makes room); `by_job`: the job `request` is filtered by (None: the subscription's job, if any, is
    kept here). Raises what the stream raises: `read_to` is where to resume."""
    async with contextlib.aclosing(read_changes(request, {"_data": subscriber.read_to})) as items:
        async for item in items:
            if item.token is not None:
                subscriber.read_to = item.token["_data"]
            event = event_of(item)
            if event is not None and not isinstance(item, Idle):
                jobs = jobs_of(item)
                if by_job is not None or subscriber.job_id in (None, *jobs, *listed_jobs_of(item)):
                    subscriber.catch_up(event, jobs)
            if subscriber.hand_over(subscriber.read_to) or subscriber.full():
                return
