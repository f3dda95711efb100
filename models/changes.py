"""Reading a MongoDB change stream that no single event can stop.

One change that MongoDB cannot deliver (an event over its 16 MiB BSON limit, error BSONObjectTooLarge) or that
PyMongo cannot decode fails the whole batch it is in, and every later attempt to read from the same position
fails again: without care, one bad change silences every subscriber and the history for good. Here such a
failure is met by reading on from the last good position one event at a time; when the first event after it
fails again, a probe that asks MongoDB for nothing but that event's identity (its resume token, task id and
time, always a few hundred bytes) learns what to step over, and the stream goes on right after it. The caller
hears of the step as a `Skipped` item, so that it can say so (a SKIPPED event, a history entry).

Events are kept small in the first place (models.events projects them to what subscribers and the history
read), so this is the last line, not the usual path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson.errors import BSONError
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import OperationFailure

from models.stored_task import Collection, TaskDoc, as_task_id

log = logging.getLogger(__name__)

ResumeToken = Mapping[str, Any]

UNDELIVERABLE_CODES = frozenset({10334})
"""BSONObjectTooLarge: the event, with what the stream asked for, exceeds MongoDB's 16 MiB document limit."""
DECODE_ERRORS: tuple[type[Exception], ...] = (BSONError, UnicodeDecodeError, ValueError, OverflowError)
"""What decoding a batch may raise; the gateway's codec options (models.connection) leave none expected."""
ISOLATE_EVENTS = 100
"""After a failed batch, how many events are read one at a time before full batches resume."""
CHANGE_BATCH = 500
"""Events per batch MongoDB sends. PyMongo decodes a batch in one call that holds the event loop: about 5 ms for
500 events, where MongoDB's default (up to 16 MiB) held it 50-100 ms after a large create, delaying every answer
of the gateway, the create's own included."""
EVENTS_PER_TURN = 100
"""Events taken from a decoded batch before the event loop gets a turn: a reader's work on a batch (the history
writer's, a subscription's) holds it a few milliseconds at a time, never a whole batch's worth."""
_PROBE_POLLS = 20
_PROBE_PROJECTION = {"operationType": 1, "documentKey": 1, "clusterTime": 1, "wallTime": 1}


@dataclass(frozen=True)
class Change:
    """One change-stream event, as the stream's projection left it."""

    document: TaskDoc

    @property
    def token(self) -> ResumeToken:
        token: ResumeToken = self.document["_id"]
        return token


@dataclass(frozen=True)
class Idle:
    """Nothing new for a poll: `token` is how far the stream has read (resume after it to miss nothing)."""

    token: ResumeToken | None


@dataclass(frozen=True)
class Skipped:
    """An event stepped over because it could not be delivered or decoded."""

    token: ResumeToken
    task_id: int | None
    at: datetime
    reason: str
    identity: TaskDoc | None = None
    """What the probe read of the change: its identity and the request's `probe_projection` (what routes it)."""


StreamItem = Change | Idle | Skipped


@dataclass(frozen=True)
class StreamRequest:
    """What to watch: which events, projected to what readers use. Images as `full_document`
    ("whenAvailable", "updateLookup") and "whenAvailable" pre-images."""

    collection: Collection
    match: dict[str, Any]
    """Filters on the event's own fields (never on the task's: see `projected_match`)."""
    projection: dict[str, Any]
    projected_match: dict[str, Any] | None
    """Filters on fields the projection computed. MongoDB must write an event out in full to test a filter on
    it, images included, which fails over 16 MiB: filtered after the projection, the event is small."""
    full_document: str
    poll_ms: int
    probe_projection: Mapping[str, Any] | None = None
    """What a probe reads besides the event's identity and the fields `projected_match` tests (what routes the
    change): kept small, as the probe must be deliverable whatever the change."""

    async def open(self, after: ResumeToken | None, *, probe: bool = False, one_by_one: bool = False) -> Any:
        projection = self.projection
        if probe:
            matched = {name: projection[name] for name in self.projected_match or ()}
            projection = _PROBE_PROJECTION | matched | dict(self.probe_projection or {})
        pipeline = [{"$match": self.match}, {"$project": projection}]
        if self.projected_match:
            pipeline.append({"$match": self.projected_match})
        stream: AsyncChangeStream[TaskDoc] = await self.collection.watch(
            pipeline,
            full_document=self.full_document,
            full_document_before_change="whenAvailable",
            # start_after, unlike resume_after, also goes on after an invalidate (a tool dropped `tasks`).
            start_after=after,
            max_await_time_ms=self.poll_ms,
            batch_size=1 if probe or one_by_one else CHANGE_BATCH,
        )
        return stream


async def read_changes(request: StreamRequest, after: ResumeToken | None) -> AsyncGenerator[StreamItem]:
    """Every change after `after` (from now when None), then live, as `Change`, `Idle` (each poll without a
    change) or `Skipped` items; each item's token is where to resume to miss nothing after it.

    Raises what MongoDB raises otherwise (unreachable, a resume point it no longer holds: OperationFailure,
    PyMongoError): the caller resumes from the token of the last item it took.
    """
    token = after
    isolating = 0
    taken = 0
    while True:
        try:
            async with await request.open(token, one_by_one=isolating > 0) as stream:
                while stream.alive:
                    taken += 1
                    if taken % EVENTS_PER_TURN == 0:
                        await asyncio.sleep(0)  # a decoded batch is read without waiting: let the loop run
                    change = await stream.try_next()
                    if change is None:
                        token = stream.resume_token or token
                        yield Idle(token)
                        if isolating:
                            break  # caught up past the failure: full batches again
                        continue
                    token = change["_id"]
                    yield Change(change)
                    if isolating:
                        isolating -= 1
                        if not isolating:
                            break
            isolating = 0
            continue  # the stream ended (an invalidate) or leaves isolation: reopen after its last event
        except OperationFailure as error:
            if error.code not in UNDELIVERABLE_CODES:
                raise
            failure: Exception = error
        except DECODE_ERRORS as error:
            failure = error
        if not isolating:
            log.warning("a change stream batch after %s failed (%s); reading on one event at a time", token, failure)
            isolating = ISOLATE_EVENTS
            continue
        skipped = await _identify_next(request, token, failure)
        isolating = 0
        if skipped is not None:
            log.error(
                "change stream: stepped over the change of task %s at %s: %s",
                skipped.task_id,
                skipped.at.isoformat(),
                skipped.reason,
            )
            token = skipped.token
            yield skipped


async def _identify_next(request: StreamRequest, after: ResumeToken | None, failure: Exception) -> Skipped | None:
    """The first event after `after`, as little of it as identifies it; None if none came (the failure passed)."""
    async with await request.open(after, probe=True) as probe:
        for _ in range(_PROBE_POLLS):
            event = await probe.try_next()
            if event is not None:
                return Skipped(event["_id"], _task_id(event), change_time(event), _reason(failure), event)
    return None


def _task_id(event: TaskDoc) -> int | None:
    return as_task_id((event.get("documentKey") or {}).get("_id"))


def change_time(event: TaskDoc) -> datetime:
    """The change's wall-clock time as MongoDB recorded it (6.0+), else its cluster time's second."""
    wall = event.get("wallTime")
    if isinstance(wall, datetime):
        return wall
    cluster_time = event.get("clusterTime")
    return datetime.fromtimestamp(cluster_time.time, tz=UTC) if cluster_time is not None else datetime.now(UTC)


def _reason(failure: Exception) -> str:
    if isinstance(failure, OperationFailure) and failure.code in UNDELIVERABLE_CODES:
        return "the change event exceeds MongoDB's 16 MiB document limit"
    return f"the change event cannot be decoded ({type(failure).__name__})"
