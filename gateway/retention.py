"""TRACKING_RETENTION_DAYS: the gateway's share of the background purge (models.retention), started with the
gateway and stopped with it. Unset, nothing runs and every task is kept."""

from __future__ import annotations

import asyncio

from gateway.settings import Settings
from models import GraphStore
from models.retention import RetentionWorker


def start_retention(store: GraphStore, settings: Settings, owner: str) -> asyncio.Task[None] | None:
    """This gateway's retention candidate as a background task, or None without TRACKING_RETENTION_DAYS."""
    if settings.retention_days is None:
        return None
    worker = RetentionWorker(
        store.lifecycle(),
        owner,
        days=settings.retention_days,
        interval_s=settings.retention_interval_s,
        archive_dir=settings.retention_archive_dir,
        batch=settings.purge_batch,
    )
    return asyncio.create_task(worker.run(), name="retention purge")
