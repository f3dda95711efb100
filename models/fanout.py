"""Live task events for every subscription of a gateway process from one shared change stream, fanned out in
process.

A waiting change stream holds a pooled connection: one stream per subscription made the number of viewers,
not the number of changes, the cost of live updates, and a few hundred idle subscriptions emptied the pool that
serves requests. Here one change stream (per process) reads every change; each event is decoded and projected
once, then handed to the subscriptions it concerns: those of its jobs (the task's job after and before the
change) and the unfiltered ones, each after its caller's visibility check (models.subscriber.Visibility).

A subscription with `after` first catches up on a change stream of its own from that cursor, then hands over
to the shared stream without a gap or a repeat (models.catch_ups, models.subscriber). The shared stream and the
catch-ups use a client of their own, whose pool has a connection for each: subscriptions never take a connection
from the pool that serves requests, and MongoDB sees a constant number of connections and change-stream cursors
whatever the number of subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from opentelemetry.trace import Tracer
from pymongo.errors import OperationFailure, PyMongoError

from models.catch_ups import CatchUps
from models.changes import Idle, StreamItem, read_changes
from models.closing import Bound, stop_task
from models.deadline import UNAVAILABLE_MESSAGE, unavailable
from models.defaults import SUBSCRIPTION_BUFFER, SUBSCRIPTION_CATCHUPS, SUBSCRIPTIONS_MAX
from models.errors import GraphError, StorageUnavailable, TooManySubscriptions
from models.events import (
    EXPIRED_CURSOR_CODES,
    SUBSCRIBER_FIELDS,
    WATCH_RETRY_S,
    TaskEvent,
    collection_uuid,
    cursor_collection,
    cursor_expired,
    cursor_later_than,
    event_of,
    is_event_cursor,
    jobs_of,
    listed_jobs_of,
    stream_request,
)
from models.fanout_metrics import LIVE_HUBS as LIVE_HUBS
from models.fanout_routes import Routes, resume_readers
from models.metrics import SUBSCRIPTION_EVENTS_DELIVERED, SUBSCRIPTIONS_REFUSED
from models.stored_task import Collection
from models.subscriber import Phase, Subscriber, Visibility
from models.tracing import StreamSpan

log = logging.getLogger(__name__)

SHARED_POLL_MS = 200
"""How long one getMore of the shared stream waits for a change before it reports its position: also the most
the first subscription of a process waits for the shared stream's first position."""
SILENCE_CHECK_S = 1.0
"""How often the shared stream's silence is checked: a stream that answers polls every SHARED_POLL_MS and has not
answered for longer has its waiting subscriptions ended once their resume window has passed since its last
answer, however long the driver itself takes to give up on a MongoDB that stopped answering."""
CATCH_UP_CLOSE_S = 1.0
"""How long a subscription's end waits for its catch-up's stream to close before cancelling it again
(models.closing)."""
SHARED_LINGER_S = 2.0
"""How long the shared stream stays open after its last subscription ended: a page reloading subscribes again
within it, and a gateway nobody watches reads (and decodes) no change at all."""


@dataclass(frozen=True)
class LiveLimits:
    """The bounds of the fan-out, each named in the error that enforces it."""

    max_subscriptions: int = SUBSCRIPTIONS_MAX
    buffer: int = SUBSCRIPTION_BUFFER
    catch_ups: int = SUBSCRIPTION_CATCHUPS

    @property
    def pool_size(self) -> int:
        """Connections of the subscriptions' own client: one per catch-up, one for the shared stream, one spare
        (a cursor's killCursors)."""
        return self.catch_ups + 2


class LiveEvents:
    """The fan-out of one gateway process (one per store): `subscribe` gives a subscription's events."""

    def __init__(
        self, tasks: Collection, full_document: str, limits: LiveLimits | None = None, tracer: Tracer | None = None
    ) -> None:
        """`tasks`: the tasks collection on the subscriptions' own client; `tracer`: where a subscription's start
        and the shared stream's resumes are spans (None: nowhere)."""
        self.limits = limits or LiveLimits()
        self._tracer = tracer
        self._tasks = tasks
        self._full_document = full_document
        self.catch_ups: CatchUps = CatchUps(tasks, full_document, self.limits.catch_ups)
        self._routes = Routes()
        self._registered = 0
        self.phases: Counter[Phase] = Counter()  # kept as they move: /metrics walks no subscriber per scrape
        self.ended = 0  # subscriptions ended since the fan-out was made
        self.position: str | None = None
        """The shared stream's position: the token of the last item it dispatched."""
        self._opened = asyncio.Event()
        self._answered_at = time.monotonic()
        """When the shared stream last answered (an event or an empty poll)."""
        self._reader: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._tasks_uuid: bytes | None = None
        """The tasks collection's UUID, which its events' cursors name (read at the first cursor naming one)."""
        LIVE_HUBS.add(self)

    def counts(self) -> tuple[int, int]:
        """Subscriptions open, and ended since the fan-out was made."""
        return self._registered, self.ended

    @property
    def shared_streams(self) -> int:
        return int(self._reader is not None and not self._reader.done())

    def subscribers(self) -> list[Subscriber]:
        return self._routes.all()

    async def subscribe(
        self,
        job_id: str | None,
        after: str | None,
        *,
        resume_within_s: float,
        visible: Visibility | None = None,
        shown: Callable[[TaskEvent], TaskEvent] | None = None,
    ) -> AsyncGenerator[TaskEvent]:
        """Every event (of one job, if given) after the event whose cursor is `after` (then live), or from now.
        Raises TooManySubscriptions past TRACKING_SUBSCRIPTIONS_MAX; while iterated, SubscriberTooSlow,
        CursorExpired, StorageUnavailable (the shared stream or the catch-up failing for `resume_within_s`)."""
        if after is not None:
            # MongoDB's resume tokens are upper-case hex, and positions are compared as text: a cursor written in
            # lower case (MongoDB takes either) would be "before" every event, its subscription silent for good.
            after = after.upper()
            if not is_event_cursor(after) or await self._of_another_collection(after):
                raise cursor_expired()
        if self._registered >= self.limits.max_subscriptions:
            SUBSCRIPTIONS_REFUSED.labels("gateway").inc()
            raise TooManySubscriptions(
                f"too many subscriptions: this gateway serves at most {self.limits.max_subscriptions} "
                "(TRACKING_SUBSCRIPTIONS_MAX); try again later or on another gateway"
            )
        self._registered += 1
        subscriber: Subscriber | None = None
        catch_up: asyncio.Task[None] | None = None
        starting = self._span("taskEvents start", after=after is not None, job_id=job_id)
        try:
            try:
                await self._started(resume_within_s)
                if after is not None and self.position is not None and cursor_later_than(after, self.position):
                    raise cursor_expired()
            except BaseException as error:
                if starting is not None:
                    starting.end(error)
                raise
            subscriber = Subscriber(
                job_id,
                self.limits.buffer,
                after=after,
                mark=self.position,
                visible=visible,
                resume_within_s=resume_within_s,
                since=time.monotonic(),
                phases=self.phases,
            )
            self._routes.add(subscriber)
            if starting is not None:
                starting.end()  # before the first event: the span must not stay current in the caller
            if after is not None:
                catch_up = asyncio.create_task(self.catch_ups.run(subscriber, after), name="subscription catch-up")
            while True:  # read here, not through a generator of the subscriber: one fewer waiting per subscription
                event = subscriber.take()
                if event is None:
                    waiter = subscriber.waiter()
                    if waiter is not None:
                        await waiter
                    continue
                SUBSCRIPTION_EVENTS_DELIVERED.inc()
                yield event if shown is None else shown(event)
        finally:
            self._registered -= 1
            self.ended += 1
            if self._registered == 0 and self._stopping is None:
                self._stopping = asyncio.create_task(self._stop_when_unwatched(), name="shared stream linger")
            if subscriber is not None:
                subscriber.end(_CLOSED)
                self._routes.discard(subscriber)
            if catch_up is not None:
                # Its stream's close asks MongoDB (killCursors): bounded, or a subscription ended because MongoDB
                # stopped answering would wait for the driver to give up on it before its reader hears.
                await stop_task(catch_up, Bound(CATCH_UP_CLOSE_S))

    async def _stop_when_unwatched(self) -> None:
        """Close the shared stream once no subscription has wanted it for SHARED_LINGER_S. Reopened later, it
        starts from then: subscriptions that resume catch up from their own cursors."""
        try:
            await asyncio.sleep(SHARED_LINGER_S)
            if self._registered == 0 and self._reader is not None:
                reader, self._reader = self._reader, None
                self.position = None
                self._opened.clear()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        finally:
            self._stopping = None

    async def close(self, bound: Bound) -> None:
        """Stop the shared stream, its cursor killed within `bound` (models.closing); open subscriptions end with
        StorageUnavailable (resume elsewhere or later)."""
        for task in (self._stopping, self._reader):
            await stop_task(task, bound)
        self._reader = None
        self._end_all(_shutting_down())

    # ---- dispatching ---------------------------------------------------------------------------------------

    def _dispatch(self, item: StreamItem) -> list[Subscriber]:
        """One item of the shared stream: its event (decoded once) queued for every subscription it concerns, at
        once (a subscription registered later starts after it). Returns the subscriptions to resume."""
        concerned: list[Subscriber] = []
        if not isinstance(item, Idle):
            event = event_of(item)
            if event is not None:
                jobs = jobs_of(item)
                concerned = self._routes.concerned(jobs | listed_jobs_of(item))
                for subscriber in concerned:
                    subscriber.offer(event, jobs)
                    if subscriber.phase is Phase.ENDED:
                        self._routes.discard(subscriber)
        if item.token is not None:
            self.position = item.token["_data"]
            self._opened.set()
        return concerned

    # ---- the shared stream ----------------------------------------------------------------------------------

    async def _started(self, resume_within_s: float) -> None:
        """Once the shared stream has a position (started here if it is not running)."""
        if self._reader is None or self._reader.done():
            # In a context of its own: the stream serves every subscription, and belongs to no caller's trace.
            self._reader = asyncio.create_task(
                self._read_shared(), name="shared change stream", context=contextvars.Context()
            )
        if self._opened.is_set():
            return
        reader, opened = self._reader, asyncio.ensure_future(self._opened.wait())
        try:
            async with asyncio.timeout(resume_within_s):
                await asyncio.wait({reader, opened}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise unavailable(f"change stream not opened within {resume_within_s:g}s", TimeoutError()) from None
        finally:
            opened.cancel()
        if not self._opened.is_set():  # the reader ended before the stream opened: a shutdown, or a bug (logged)
            raise _shutting_down() if reader.cancelled() else StorageUnavailable(UNAVAILABLE_MESSAGE)

    async def _read_shared(self) -> None:
        self._answered_at = time.monotonic()
        watchdog = asyncio.create_task(self._end_waiting_on_silence(), name="shared change stream silence")
        try:
            await self._read_shared_stream()
        finally:
            watchdog.cancel()

    async def _end_waiting_on_silence(self) -> None:
        """While the shared stream reads: a MongoDB that stops answering without closing its connections (frozen,
        a network dropping packets) leaves the stream's poll waiting until the driver gives up on the server, tens
        of seconds later; subscriptions waiting meanwhile end with UNAVAILABLE once their resume window has passed
        since the stream's last answer, as when the stream fails."""
        while True:
            await asyncio.sleep(SILENCE_CHECK_S)
            answered_at = self._answered_at
            if time.monotonic() - answered_at > SILENCE_CHECK_S:
                self._end_waiting_too_long(answered_at, TimeoutError("the shared change stream does not answer"))

    async def _read_shared_stream(self) -> None:
        request = stream_request(self._tasks, None, SUBSCRIBER_FIELDS, self._full_document, SHARED_POLL_MS, routed=True)
        failing_since: float | None = None
        while True:
            token = {"_data": self.position} if self.position is not None else None
            resuming = None
            if failing_since is not None:
                resuming = self._span("taskEvents resume", after=token is not None, job_id=None)
            try:
                async with contextlib.aclosing(read_changes(request, token)) as items:
                    async for item in items:
                        self._answered_at = time.monotonic()
                        if resuming is not None:
                            resuming.end()
                        failing_since = None
                        concerned = self._dispatch(item)
                        if concerned:  # most changes concern no open subscription: no coroutine for them
                            await resume_readers(concerned)
                continue
            except OperationFailure as error:
                if error.code in EXPIRED_CURSOR_CODES and self.position is not None:
                    log.error("the shared change stream cannot resume after %s: subscriptions resume", self.position)
                    self._end_all(cursor_expired())
                    self.position = None
                    self._opened.clear()
                    continue
                failure: Exception = error
            except PyMongoError as error:
                failure = error
            except Exception:  # a bug must not leave subscriptions waiting forever; nor is it MongoDB's failure
                log.exception("the shared change stream failed")
                self._end_all(StorageUnavailable(UNAVAILABLE_MESSAGE))
                # Every subscription it served has ended: the stream reopened by the next one starts from then,
                # not from this position (that subscription would get changes made before it subscribed). Ended,
                # not raised: logged once, not again as a task exception nobody retrieved.
                self.position = None
                self._opened.clear()
                return
            finally:
                if resuming is not None:
                    resuming.end()  # failed or closed before the stream answered (ending twice is a no-op)
            failing_since = failing_since or self._answered_at  # the window runs from the last answer
            log.info("shared change stream interrupted (%s); resuming after its last position", failure)
            self._end_waiting_too_long(failing_since, failure)
            await asyncio.sleep(WATCH_RETRY_S)

    async def _of_another_collection(self, cursor: str) -> bool:
        """Whether `cursor` is the event of another collection or database: MongoDB would refuse it only at the
        next change of the tasks, and the subscription would wait silently until then. The UUID is read again
        whenever a cursor names another one (the collection may have been made anew); unknown (MongoDB away):
        not refused here, the catch-up's stream answers."""
        named = cursor_collection(cursor)
        if named is None:
            return False
        if named != self._tasks_uuid:
            try:
                self._tasks_uuid = await collection_uuid(self._tasks)
            except PyMongoError:
                return False
        return self._tasks_uuid is not None and named != self._tasks_uuid

    def _span(self, name: str, *, after: bool, job_id: str | None) -> StreamSpan | None:
        """A span current until the stream it opens first answers (None untraced). It names no task data:
        whether the subscription is of one job, whether it starts after a cursor."""
        if self._tracer is None:
            return None
        attributes: dict[str, str | int | float | bool] = {"tracking.events.by_job": job_id is not None}
        attributes["tracking.events.after"] = after
        return StreamSpan(self._tracer, name, attributes, resuming=name.endswith("resume"))

    def _end_all(self, error: GraphError) -> None:
        for subscriber in self.subscribers():
            subscriber.end(error)
            self._routes.discard(subscriber)

    def _end_waiting_too_long(self, failing_since: float, failure: Exception) -> None:
        """Subscriptions that have waited for the shared stream longer than their resume window end with
        UNAVAILABLE (they resume with their cursor)."""
        now = time.monotonic()
        errors: dict[float, GraphError] = {}
        for subscriber in self.subscribers():
            window = subscriber.resume_within_s
            if now - max(failing_since, subscriber.since) > window:
                if window not in errors:
                    errors[window] = unavailable(f"change stream not resumable within {window:g}s", failure)
                subscriber.end(errors[window])
                self._routes.discard(subscriber)


_CLOSED = GraphError("subscription closed")
"""How a subscription its reader left is marked ended (no one reads it)."""


def _shutting_down() -> StorageUnavailable:
    """A new one at each shutdown: raised in each reader, an error chains the reader's frames onto its traceback,
    and one made once for the process would keep every reader it ended alive."""
    return StorageUnavailable("the gateway is shutting down: subscribe again with after: your last cursor")
