"""The background purge of TRACKING_RETENTION_DAYS: every gateway runs a candidate; one at a time purges.

The lease is the document `{_id: "retention", owner, expires, lastRun}` in `task_history_lease` (beside the
history writer's). A candidate takes it when it is free (expired) and the last run is at least one interval
old, renews it between purge batches, and releases it with the run's time when done. So one purge runs per
interval across every instance; if its holder dies, another takes over once the lease expired and runs again
(a purge is safe to repeat: each batch is a transaction that reads the jobs again).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from models.history import LEASES, give_up_lease
from models.lifecycle import DEFAULT_PURGE_BATCH, Lifecycle
from models.metrics import RETENTION_RUNS

log = logging.getLogger(__name__)

LEASE_ID = "retention"
LEASE_S = 60.0
"""How long a purge may go without renewing (it renews before every batch) before another gateway takes over."""
POLL_S = 60.0
"""How often a candidate asks whether a purge is due (at most; less when the interval is shorter)."""


class RetentionWorker:
    """Purges jobs inactive for `days` every `interval_s` seconds, on one gateway at a time."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        owner: str,
        *,
        days: float,
        interval_s: float,
        archive_dir: Path | None = None,
        batch: int = DEFAULT_PURGE_BATCH,
        lease_s: float = LEASE_S,
    ) -> None:
        self._leases = lifecycle.database.get_collection(LEASES)
        self._lifecycle = lifecycle
        self.owner = owner
        self.days = days
        self.interval_s = interval_s
        self.archive_dir = archive_dir
        self.batch = batch
        self.lease_s = lease_s
        self.runs = 0

    async def run(self) -> None:
        """Until cancelled. A failure is logged with its cause and counted (/metrics), and the lease given up: this
        candidate sits out its next poll, so that another gateway (whose archive directory, say, is usable)
        runs the purge meanwhile instead of this one holding the lease and failing at every poll."""
        poll_s = min(POLL_S, self.interval_s)
        while True:
            try:
                if await self._take_if_due():
                    await self._purge()
                    RETENTION_RUNS.labels("ok").inc()
            except Exception:
                RETENTION_RUNS.labels("failed").inc()
                log.exception("retention purge by %s failed; giving the lease up, trying again later", self.owner)
                await give_up_lease(self._leases, LEASE_ID, self.owner)
                await asyncio.sleep(poll_s)  # another candidate's turn first
            await asyncio.sleep(poll_s)

    async def _take_if_due(self) -> bool:
        now = datetime.now(UTC)
        due = now - timedelta(seconds=self.interval_s)
        try:
            await self._leases.find_one_and_update(
                {
                    "_id": LEASE_ID,
                    "$and": [
                        {"$or": [{"owner": self.owner}, {"expires": {"$lt": now}}]},
                        {"$or": [{"lastRun": {"$exists": False}}, {"lastRun": {"$lte": due}}]},
                    ],
                },
                {"$set": {"owner": self.owner, "expires": now + timedelta(seconds=self.lease_s)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # another gateway holds it, or the last run is recent
        return True

    async def _renew(self) -> bool:
        now = datetime.now(UTC)
        renewed = await self._leases.update_one(
            {"_id": LEASE_ID, "owner": self.owner}, {"$set": {"expires": now + timedelta(seconds=self.lease_s)}}
        )
        return renewed.matched_count == 1

    async def _purge(self) -> None:
        report = await self._lifecycle.purge(
            self.days, archive_dir=self.archive_dir, batch=self.batch, still_leading=self._renew
        )
        self.runs += 1
        now = datetime.now(UTC)
        await self._leases.update_one(
            {"_id": LEASE_ID, "owner": self.owner}, {"$set": {"lastRun": now, "expires": now}}
        )
        jobs = sum(1 for unit in report.units if unit.job_id is not None)
        log.info(
            "retention (TRACKING_RETENTION_DAYS=%g): purged %d jobs and %d tasks not updated since %s",
            self.days,
            jobs,
            report.task_count,
            report.cutoff.isoformat(),
        )
