"""Which subscriptions an event of the shared stream goes to (by job, and the unfiltered ones), and resuming
their readers a few per turn of the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from models.subscriber import Subscriber

WAKES_PER_TURN = 4
"""Readers the shared stream resumes per turn of the event loop. A resumed reader runs its delivery (its answer,
its frame, the socket's write) before the loop serves anything else: an event for thousands of subscriptions,
or a batch of events for a few hundred, resumed them all in one turn, and every request waited behind every
delivery. A few at a time, with the loop's other work in between, a request waits for a few deliveries at most."""


class Routes:
    """The open subscriptions of a fan-out, by the job they follow (None: every job)."""

    __slots__ = ("_by_job", "_everything")

    def __init__(self) -> None:
        self._everything: set[Subscriber] = set()
        self._by_job: dict[str, set[Subscriber]] = {}

    def add(self, subscriber: Subscriber) -> None:
        if subscriber.job_id is None:
            self._everything.add(subscriber)
        else:
            self._by_job.setdefault(subscriber.job_id, set()).add(subscriber)

    def discard(self, subscriber: Subscriber) -> None:
        if subscriber.job_id is None:
            self._everything.discard(subscriber)
            return
        subscribers = self._by_job.get(subscriber.job_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_job[subscriber.job_id]

    def concerned(self, jobs: Iterable[str]) -> list[Subscriber]:
        """The subscriptions an event of `jobs` concerns: those of its jobs and the unfiltered ones."""
        targets = list(self._everything)
        for job in jobs:
            targets.extend(self._by_job.get(job, ()))
        return targets

    def all(self) -> list[Subscriber]:
        found = list(self._everything)
        for subscribers in self._by_job.values():
            found.extend(subscribers)
        return found


async def resume_readers(subscribers: list[Subscriber]) -> None:
    """Resume the waiting readers among `subscribers`, WAKES_PER_TURN per turn of the event loop (all the rest at
    once if the caller is cancelled meanwhile: none is left waiting for what it was given)."""
    left = iter(subscribers)
    try:
        resumed = 0
        for subscriber in left:
            if subscriber.wake():
                resumed += 1
                if resumed % WAKES_PER_TURN == 0:
                    await asyncio.sleep(0)  # the resumed readers run, and what else waits, before the next ones
        if resumed % WAKES_PER_TURN:
            await asyncio.sleep(0)
    finally:
        for subscriber in left:
            subscriber.wake()
