"""The task history's writer: exactly one among all gateway instances. A lease (the `task_history_lease`
document, renewed every second, taken over once it expired: `LEASE_S`) picks it. The writer saves the stream's
resume token with each batch of entries, so a new writer goes on where the last one stopped; each entry's `_id`
is its change's resume token, so a change written twice during a hand-over is stored once. If the oplog no longer
holds the resume point, the writer records a GAP entry and logs it, then goes on from now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
from bson.errors import BSONError
from bson.int64 import Int64
from opentelemetry.trace import Tracer
from pymongo import ReturnDocument
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from models.changes import Change, Idle, Skipped, StreamItem, StreamRequest, read_changes
from models.connection import CODEC_OPTIONS
from models.documents import TaskRecord
from models.events import EXPIRED_CURSOR_CODES, HISTORY_FIELDS, HISTORY_LINKS, event_from_change, stream_request
from models.history import GAP, HISTORY, LEASES, SKIPPED, entry_of, give_up_lease, skipped_entry
from models.stored_task import Collection, Database, RawDocument
from models.tracing import root_span

log = logging.getLogger(__name__)

_LEASE_ID = "writer"
EVENT_CODEC_OPTIONS = CODEC_OPTIONS.with_options(tzinfo=None)
"""How the writer decodes its change stream: the gateway's options, but times in BSON's own UTC (equal to
datetime.UTC) rather than converted into datetime.UTC, a Python call per event that is a sixth of decoding it."""


def _entry_of(item: StreamItem) -> RawDocument | None:
    if isinstance(item, Change):
        event = event_from_change(item.document, HISTORY_LINKS)
        return entry_of(event) if event is not None else None
    if isinstance(item, Skipped):
        return skipped_entry(item)
    return None


_TRANSIENT_CODES = frozenset({91, 189, 10107, 11600, 11602, 13435, 13436})
"""ShutdownInProgress, PrimarySteppedDown, NotWritablePrimary, InterruptedAtShutdown, InterruptedDueToReplStateChange,
NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary: the write may succeed on the next primary."""


def _is_transient(error: Exception) -> bool:
    """Whether writing may work when tried again (MongoDB unreachable, an election), as opposed to a failure of
    these entries themselves, which trying again would only repeat."""
    if isinstance(error, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True
    if isinstance(error, PyMongoError) and (error.timeout or error.has_error_label("RetryableWriteError")):
        return True
    return (
        isinstance(error, OperationFailure)
        and not isinstance(error, BulkWriteError)
        and (error.code in _TRANSIENT_CODES)
    )


LEASE_S = 3.0
"""How long the writer's lease lasts unrenewed. The holder renews it, and every other candidate tries to take it,
every third of that: when the holder dies, another gateway leads within one to one and a third of it. Short,
so that the history (and its lag) moves on within seconds; a holder whose event loop stalls longer than two
thirds of it may lose the lease to another, which is harmless (it stops at its next renewal, and a change
written by both is stored once)."""
RELEASE_S = 1.0
"""How long a stopping writer waits for MongoDB to take its lease back (a frozen MongoDB must not hold the stop)."""
GIVE_UP_S = 30.0
"""How long a writer that keeps failing holds on before it says so (/readyz) and hands its lease over: longer
than an election takes, so that one is ridden out rather than handed over."""


class HistoryWriter:
    """Runs in every gateway; writes only while it holds the lease. It never stops by itself: any failure is
    logged with its cause and tried again; a change that cannot be recorded is recorded as SKIPPED; a writer
    that keeps failing for `give_up_s` hands the lease over (`failure` says why, for /readyz)."""

    def __init__(
        self,
        database: Database,
        owner: str,
        *,
        lease_s: float = LEASE_S,
        flush_s: float = 0.5,
        batch: int = 1000,
        full_document: str = "updateLookup",
        give_up_s: float | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._tasks: Collection = database.get_collection(TaskRecord.Settings.name, codec_options=EVENT_CODEC_OPTIONS)
        self._history: Collection = database.get_collection(HISTORY)
        self._leases: Collection = database.get_collection(LEASES)
        self.owner = owner
        self.lease_s = lease_s
        self.flush_s = flush_s
        self.batch = batch
        self.written = 0
        self.give_up_s = give_up_s if give_up_s is not None else GIVE_UP_S
        self._leads = False
        self._held_until = 0.0
        """Until when (monotonic) the lease this writer last took or renewed is its own, by its own clock."""
        self._full_document = full_document
        self._tracer = tracer
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._caught_up_at: float | None = None
        """When (monotonic) the history this writer wrote last held every change up to then; None while it has
        not led since it last stood by (the history's lag is then another writer's)."""

    @property
    def leading(self) -> bool:
        """Whether this writer writes the history now: it leads, and the lease it last took or renewed has not
        expired by its clock (a writer whose MongoDB stopped answering mid-read says no once its lease is over,
        when another may lead: the fleet's `tracking_history_writer_leading` sums to at most one)."""
        return self._leads and time.monotonic() < self._held_until

    @leading.setter
    def leading(self, leads: bool) -> None:
        self._leads = leads

    def lag_seconds(self) -> float:
        """How far behind the changes this writer's history is: seconds since it last had every change up to
        then recorded, while it leads or keeps failing after it led; else 0 (another writer's lag is its own)."""
        if self._caught_up_at is None or not (self.leading or self._failing_since is not None):
            return 0.0
        return time.monotonic() - self._caught_up_at

    @property
    def failure(self) -> str | None:
        """Why this writer cannot go on, once it has failed for `give_up_s`; else None."""
        if self._failing_since is None or time.monotonic() - self._failing_since < self.give_up_s:
            return None
        return f"task history writer failing for {time.monotonic() - self._failing_since:.0f}s: {self._last_error}"

    async def run(self) -> None:
        """Until cancelled: wait for the lease, then write history while it is held; stopped, give it up."""
        try:
            while True:
                await self._one_turn()
        except asyncio.CancelledError:
            await self._release()
            raise

    async def _one_turn(self) -> None:
        try:
            if await self._take_lease():
                await self._write_while_leading()
                self.leading = False  # another writer took the lease over
                return
            self._standing_by()
        except Exception as error:  # whatever it is: logged with its cause, never the end of the history
            self.leading = False  # not writing: it leads again once it takes the lease and reads again
            self._failed(error)
            if self.failure is not None:
                await self._hand_over()
                await asyncio.sleep(self.lease_s)  # long enough for every other candidate to try
                return
        await asyncio.sleep(self.lease_s / 3)

    def _standing_by(self) -> None:
        """MongoDB answered and another writer leads: whatever this one failed at before (reaching MongoDB, or
        writing while it led) is behind it, and it has no history of its own to lag behind."""
        if self._failing_since is not None:
            log.info("task history writer %s stands by: another writer leads", self.owner)
        self.leading = False
        self._failing_since = None
        self._last_error = None
        self._caught_up_at = None

    def _failed(self, error: Exception) -> None:
        self._failing_since = self._failing_since or time.monotonic()
        self._last_error = f"{type(error).__name__}: {error}"
        if isinstance(error, PyMongoError) and _is_transient(error):
            log.warning("task history writer %s: %s; trying again", self.owner, error)
        else:
            log.error("task history writer %s failed; trying again", self.owner, exc_info=error)

    async def _release(self) -> None:
        """On stop, give the lease up at once (within RELEASE_S) so that another gateway leads without waiting
        for it to expire: a rolling restart would else add a lease's length to the history's lag each time."""
        if not self.leading:
            return
        with pymongo.timeout(RELEASE_S):
            await self._give_lease_up()
        log.info("task history writer %s released the lease", self.owner)

    async def _hand_over(self) -> None:
        """Give the lease up so that another gateway, which may fare better, takes over."""
        log.error("task history writer %s hands the lease over: %s", self.owner, self.failure)
        await self._give_lease_up()

    async def _give_lease_up(self) -> None:
        self.leading = False
        await give_up_lease(self._leases, _LEASE_ID, self.owner)

    async def _take_lease(self) -> bool:
        now, sent = datetime.now(UTC), time.monotonic()
        try:
            await self._leases.find_one_and_update(
                {"_id": _LEASE_ID, "$or": [{"owner": self.owner}, {"expires": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires": now + timedelta(seconds=self.lease_s)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # another writer holds it
        self._held_until = sent + self.lease_s
        return True

    async def _renew(self, token: Any) -> bool:
        """Keep the lease and save how far the history goes; False once another writer took over."""
        now, sent = datetime.now(UTC), time.monotonic()
        renewed = await self._leases.update_one(
            {"_id": _LEASE_ID, "owner": self.owner},
            {"$set": {"expires": now + timedelta(seconds=self.lease_s), "resumeToken": token}},
        )
        if renewed.matched_count != 1:
            return False
        self._held_until = sent + self.lease_s  # from when it was asked: the lease's expiry is that time's
        return True

    async def _write_while_leading(self) -> None:
        lease = await self._leases.find_one({"_id": _LEASE_ID})
        token = (lease or {}).get("resumeToken")
        log.info("task history writer %s leads%s", self.owner, " (resuming)" if token else "")
        self.leading = True
        if self._failing_since is None or self._caught_up_at is None:  # failing again: from its last success
            self._caught_up_at = time.monotonic()
        request = stream_request(self._tasks, None, HISTORY_FIELDS, self._full_document, int(self.flush_s * 1000))
        try:
            await self._write_from(request, token)
        except OperationFailure as error:
            if token is None or error.code not in EXPIRED_CURSOR_CODES:
                raise
            # Where the history goes on is taken before the gap is recorded: the next stream resumes from there,
            # so a change made while the gap is written, or before the next stream opens, is not lost as well.
            resume_from = await _resume_token_now(request)
            await self._record_gap(token)
            await self._renew(resume_from)

    async def _write_from(self, request: StreamRequest, token: Any) -> None:
        pending: list[RawDocument] = []
        renew_at = flush_at = time.monotonic()
        async with contextlib.aclosing(read_changes(request, token)) as items:
            async for item in items:
                entry = _entry_of(item)
                if entry is not None:
                    pending.append(entry)
                now = time.monotonic()
                idle = isinstance(item, Idle)
                if pending and (idle or len(pending) >= self.batch or now >= flush_at):
                    with root_span(self._tracer, "task history batch", {"tracking.history.entries": len(pending)}):
                        await self._write(pending)
                    self._written_up_to(pending[-1].get("at"), now)
                    pending = []
                    flush_at = now + self.flush_s
                    renew_at = now  # save the token right after what it covers is written
                if not pending and now >= renew_at:
                    if not await self._renew(item.token):
                        log.info("task history writer %s lost the lease", self.owner)
                        return
                    renew_at = now + self.lease_s / 3
                if idle and not pending:
                    self._written_up_to(None, now)  # every change so far is stored

    def _written_up_to(self, newest: object, now: float) -> None:
        """Every change up to the one made at `newest` is stored (None: every change so far, an idle poll said
        so): writing works again, and the history is behind by that change's age (under steady changes no idle
        poll comes to say so)."""
        age = 0.0
        if isinstance(newest, datetime) and newest.tzinfo is not None:
            age = (datetime.now(UTC) - newest).total_seconds()
        self._caught_up_at = now - max(age, 0.0)
        self._failing_since = None

    async def _record_gap(self, token: Any) -> None:
        now = datetime.now(UTC)
        log.error(
            "task history has a GAP: the oplog no longer holds the changes after %s; history resumes from %s",
            token,
            now.isoformat(),
        )
        gap = {"_id": f"gap-{now.isoformat()}", "task": None, "kind": GAP, "fields": [], "at": now, "after": token}
        await self._history.insert_one(gap)

    async def _write(self, entries: list[RawDocument]) -> None:
        """Store the entries; one that MongoDB refuses for itself is stored as SKIPPED (or, failing that, only
        logged), so that the writer never stops at it, now or after a restart."""
        try:
            await self._history.insert_many(entries, ordered=False)
        except BulkWriteError as error:
            # A change the previous writer already stored (its _id is the change's resume token): harmless.
            refused = [item for item in error.details.get("writeErrors", []) if item.get("code") != 11000]
            for item in refused:
                await self._write_instead(entries[item["index"]], item.get("errmsg", "refused"))
        except PyMongoError as error:
            if _is_transient(error):
                raise
            for entry in entries:
                await self._write_one(entry)
        except (BSONError, ValueError, TypeError, OverflowError):
            for entry in entries:
                await self._write_one(entry)
        self.written += len(entries)

    async def _write_one(self, entry: RawDocument) -> None:
        try:
            await self._history.insert_one(entry)
        except DuplicateKeyError:
            pass
        except PyMongoError as error:
            if _is_transient(error):
                raise
            await self._write_instead(entry, str(error))
        except (BSONError, ValueError, TypeError, OverflowError) as error:
            await self._write_instead(entry, str(error))

    async def _write_instead(self, entry: RawDocument, reason: str) -> None:
        log.error(
            "task history: the entry of task %s at %s cannot be stored (%s)", entry.get("task"), entry.get("at"), reason
        )
        task = entry.get("task") if isinstance(entry.get("task"), Int64) else None
        at = entry.get("at") if isinstance(entry.get("at"), datetime) else datetime.now(UTC)
        skipped: RawDocument = {
            "_id": str(entry.get("_id")),
            "task": task,
            "job": None,
            "kind": SKIPPED,
            "fields": [],
            "at": at,
            "reason": f"cannot be stored: {reason}"[:1000],
        }
        with contextlib.suppress(DuplicateKeyError):
            # If not even this can be stored, nothing can: the writer fails (and says so) rather than drop it.
            await self._history.insert_one(skipped)


async def _resume_token_now(request: StreamRequest) -> Any:
    """A resume token for this moment: the one a stream opened now reports before any change."""
    async with await request.open(None) as stream:
        return stream.resume_token
