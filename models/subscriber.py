"""One subscription's side of the fan-out (models.fanout): the bounded buffer its reader takes events from, and
the hand-over from its catch-up read to the shared change stream, without a gap or a repeat.

Positions are resume tokens' `_data`: MongoDB's resume tokens are KeyStrings, written as hex, so they compare
as strings in the order of the changes they mark, whichever stream gave them (an event's token or a stream's
postBatchResumeToken, a point between events). That order is what makes the hand-over exact:

- While a subscription catches up (its own change stream from its `after` cursor), the shared stream's events
  for it are kept aside (`pending`), each after `mark`: the shared stream's position when keeping began.
- Once the catch-up has read up to `mark` (any token at or past it), every event up to `mark` came from the
  catch-up and every later one is pending: the pending events past the last one delivered are queued, in order,
  and the subscription is live. Kept aside is bounded too: past the buffer, the pending events are dropped and
  `mark` moves to the event that did not fit, so the catch-up reads that far instead (nothing is lost); but if
  the reader has meanwhile left its buffer full, it fell behind, and is ended as below.
- Live, the shared stream queues each event for the reader. A reader that lets `buffer` events wait is ended
  with SubscriberTooSlow (after the events already queued): it never holds the shared stream back, and what it
  holds is bounded.
"""

from __future__ import annotations

import asyncio
import enum
from collections import Counter, deque
from collections.abc import Callable

from models.errors import CursorExpired, GraphError, StorageUnavailable, SubscriberTooSlow
from models.events import TaskEvent
from models.metrics import SUBSCRIPTION_EVENTS_DROPPED, SUBSCRIPTIONS_ENDED

Visibility = Callable[[frozenset[str]], bool]
"""Whether a caller may see a change of these jobs (e.g. the job prefixes its token allows); applied to every
event before it is queued for that caller, on the shared stream and in catch-up alike."""


class Phase(enum.Enum):
    CATCHING_UP = "catching_up"
    LIVE = "live"
    ENDED = "ended"


def too_slow(buffer: int) -> SubscriberTooSlow:
    return SubscriberTooSlow(
        f"subscription ended: its reader fell behind by more than {buffer} events "
        "(TRACKING_SUBSCRIPTION_BUFFER); subscribe again with after: the cursor of the last event received"
    )


class Subscriber:
    """A subscription registered with the fan-out. Events are queued by the shared stream (`offer`) or by the
    catch-up read (`catch_up`, `hand_over`); the reader takes them with `take`, and awaits its `waiter` for more.

    Every open subscription holds one, for as long as it is open: its attributes are slots, and waiting for an
    event costs one future, not an asyncio.Event's wait (a coroutine and a future each time, and a deque for
    good), so that the fleet's waiting state is fewer objects for the garbage collector to walk."""

    __slots__ = (
        "_phases",
        "_room",
        "_waiter",
        "buffer",
        "delivered",
        "dropped",
        "ending",
        "job_id",
        "mark",
        "pending",
        "phase",
        "queue",
        "read_to",
        "resume_within_s",
        "since",
        "taken",
        "visible",
    )

    def __init__(
        self,
        job_id: str | None,
        buffer: int,
        *,
        after: str | None,
        mark: str | None,
        visible: Visibility | None = None,
        resume_within_s: float = 30.0,
        since: float = 0.0,
        phases: Counter[Phase] | None = None,
    ) -> None:
        """`phases`: the counts of its fan-out's subscriptions by phase, kept as this one moves (until it ends)."""
        self.job_id = job_id
        self.buffer = buffer
        self.visible = visible
        self.resume_within_s = resume_within_s
        self.since = since  # when it registered (monotonic): a failing shared stream's wait counts from here
        self._phases = phases
        self.phase = Phase.CATCHING_UP if after is not None else Phase.LIVE
        if phases is not None:
            phases[self.phase] += 1
        self.delivered = after  # the last event queued (or `after`): nothing at or before it is queued again
        self.mark = mark
        self.read_to = after or ""  # how far its catch-up has read (where a catch-up reopened goes on)
        self.pending: list[TaskEvent] = []
        self.queue: deque[TaskEvent] = deque()
        self.ending: GraphError | None = None
        self.dropped = 0
        self.taken = 0
        self._waiter: asyncio.Future[None] | None = None
        self._room = asyncio.Event()
        self._room.set()

    # ---- the shared stream's side --------------------------------------------------------------------------

    def sees(self, jobs: frozenset[str]) -> bool:
        return self.visible is None or self.visible(jobs)

    def offer(self, event: TaskEvent, jobs: frozenset[str]) -> None:
        """An event of the shared stream that concerns this subscription's job, queued without resuming the
        reader: the fan-out resumes readers a few at a time (`wake`)."""
        if self.phase is Phase.ENDED or not self.sees(jobs):
            return
        if self.phase is Phase.LIVE:
            # A catch-up that ran ahead of the shared stream delivered this one already.
            if self.delivered is None or event.cursor > self.delivered:
                self._queue_or_end(event, wake=False)
            return
        if len(self.pending) >= self.buffer:
            if self.full():
                # As many live events came while the reader left its buffer full: it fell behind, whatever
                # the catch-up does.
                self._drop(1)
                self.end(too_slow(self.buffer))
                return
            # The catch-up is far behind: it reads this far instead of the shared stream keeping it aside.
            self.pending.clear()
            self.mark = event.cursor
            return
        self.pending.append(event)

    def end(self, error: GraphError) -> None:
        """End the subscription with `error`, after the events already queued."""
        if self.phase is Phase.ENDED:
            return
        if isinstance(error, SubscriberTooSlow):
            self._drop(len(self.pending))  # kept aside for it, never to be queued: it gets them when it resumes
        SUBSCRIPTIONS_ENDED.labels(_reason(error)).inc()
        self._enter(Phase.ENDED)
        self.ending = error
        self.pending.clear()
        self.wake()

    def wake(self) -> bool:
        """Resume the reader if it waits and an event or the end is there for it (whether it did)."""
        waiter = self._waiter
        if waiter is None or waiter.done() or not (self.queue or self.ending is not None):
            return False
        waiter.set_result(None)
        return True

    def _enter(self, phase: Phase) -> None:
        if self._phases is not None:
            self._phases[self.phase] -= 1
            if phase is not Phase.ENDED:
                self._phases[phase] += 1
        self.phase = phase

    def _drop(self, events: int) -> None:
        self.dropped += events
        SUBSCRIPTION_EVENTS_DROPPED.inc(events)

    def _queue_or_end(self, event: TaskEvent, *, wake: bool = True) -> None:
        if len(self.queue) >= self.buffer:
            self._drop(1)
            self.end(too_slow(self.buffer))
            return
        self.queue.append(event)
        self.delivered = event.cursor
        if wake:
            self.wake()
        if len(self.queue) >= self.buffer:
            self._room.clear()

    # ---- the catch-up's side -------------------------------------------------------------------------------

    @property
    def catching_up(self) -> bool:
        return self.phase is Phase.CATCHING_UP

    def full(self) -> bool:
        """Whether the catch-up should stop reading until the reader makes room (see `room`)."""
        return len(self.queue) >= self.buffer

    async def room(self) -> None:
        """Until the reader has taken half the buffer (at once when it is not full)."""
        await self._room.wait()

    def catch_up(self, event: TaskEvent, jobs: frozenset[str]) -> None:
        """An event of the catch-up read (in order, after `after`)."""
        if self.phase is not Phase.CATCHING_UP or not self.sees(jobs):
            return
        if self.delivered is not None and event.cursor <= self.delivered:
            return
        self._queue_or_end(event)

    def hand_over(self, position: str) -> bool:
        """The catch-up has read up to `position`: if that reaches the mark and the pending events fit the
        buffer, queue those not delivered yet and go live. Whether it is live (or ended) now."""
        if self.phase is not Phase.CATCHING_UP:
            return True
        if self.mark is not None and position < self.mark:
            return False
        later = [event for event in self.pending if self.delivered is None or event.cursor > self.delivered]
        if len(self.queue) + len(later) > self.buffer:
            # They do not fit beside what waits: the catch-up reads them instead, once the reader made room.
            self.mark = self.pending[-1].cursor
            self.pending.clear()
            return False
        self.pending.clear()
        for event in later:
            self._queue_or_end(event)
        self._enter(Phase.LIVE)
        return True

    # ---- the reader's side ---------------------------------------------------------------------------------

    def take(self) -> TaskEvent | None:
        """The next queued event; None when none waits; raises the ending error once the queue is empty."""
        queue = self.queue
        if not queue:
            if self.ending is not None:
                raise self.ending
            return None
        event = queue.popleft()
        self.taken += 1
        if len(queue) <= self.buffer // 2:
            self._room.set()
        return event

    def waiter(self) -> asyncio.Future[None] | None:
        """A future done once an event is queued or the subscription ends; None when either is so already. The
        reader awaits the future itself, not a coroutine around it: every waiting subscription holds one object
        fewer for the garbage collector to walk."""
        if self.queue or self.ending is not None:
            return None
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    @property
    def waiting(self) -> bool:
        """Whether the reader waits for an event now."""
        return self._waiter is not None and not self._waiter.done()


def _reason(error: GraphError) -> str:
    """How tracking_subscriptions_ended_total names an ending."""
    if isinstance(error, SubscriberTooSlow):
        return "too_slow"
    if isinstance(error, StorageUnavailable):
        return "unavailable"
    if isinstance(error, CursorExpired):
        return "cursor_expired"
    return "closed"
