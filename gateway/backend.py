"""What the gateway needs from MongoDB, opened once per process: the embedded mongod when no URI is
configured (supervised while the gateway runs), then the graph store connected to it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry.trace import TracerProvider

from gateway.embedded import EmbeddedMongo
from gateway.retention import start_retention
from gateway.settings import Settings
from models import GraphStore, HistoryWriter
from models.closing import Bound, stop_task
from models.metrics import HISTORY_LAG, HISTORY_LEADING

log = logging.getLogger(__name__)


@dataclass
class Backend:
    store: GraphStore
    embedded: EmbeddedMongo | None = None
    failure: str | None = None
    """Why this backend can never serve again (the embedded mongod could not be kept running), else None."""
    _closed: bool = field(default=False, repr=False)
    _supervisor: asyncio.Task[None] | None = field(default=None, repr=False)
    _history: asyncio.Task[None] | None = field(default=None, repr=False)
    history_writer: HistoryWriter | None = None
    """This process's candidate for writing the task history, once `write_history` started it."""
    _retention: asyncio.Task[None] | None = field(default=None, repr=False)

    def purge_in_background(self, settings: Settings) -> None:
        """Take part in the TRACKING_RETENTION_DAYS purge (gateway.retention); nothing when it is unset."""
        if self._retention is None:
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            self._retention = start_retention(self.store, settings, owner)

    def start_background(self, settings: Settings, on_failure: Callable[[str], None] = lambda _: None) -> None:
        """Start, once, everything that runs beside serving: the task history writer, the TRACKING_RETENTION_DAYS
        purge and the embedded mongod's supervision (`on_failure` hears when the mongod cannot be kept running).
        The app's lifespan and the CLI both start their backend here, so a new background task is added here
        only; `close` stops them."""
        self.write_history()
        self.purge_in_background(settings)
        self.supervise(settings.embedded_restarts, on_failure)

    def write_history(self) -> None:
        """Take part in writing the task history (one gateway of all writes it at a time; see models.history_writer)."""
        if self._history is None:
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            self.history_writer = self.store.history_writer(owner)
            self._history = asyncio.create_task(self.history_writer.run(), name="task history writer")
            HISTORY_LAG.set_function(self.history_writer.lag_seconds)
            HISTORY_LEADING.set_function(lambda: float(self.history_writer is not None and self.history_writer.leading))

    def history_failure(self) -> str | None:
        """Why this process's history writer cannot go on (it handed its lease over), else None."""
        return self.history_writer.failure if self.history_writer is not None else None

    async def stop_writing_history(self, bound: Bound | None = None) -> None:
        """Stop this process's history writer, its change stream closed within `bound` (default: the deadline)."""
        history, self._history = self._history, None
        await stop_task(history, bound or Bound(self.store.timeout_s))

    @classmethod
    async def open(cls, settings: Settings, tracer_provider: TracerProvider | None = None) -> Backend:
        """Connect (starting the embedded mongod first if no URI is set); refuses servers without transactions.
        With `tracer_provider`, the store's MongoDB commands and background work are traced."""
        embedded = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedMongo(settings.data_dir, port=settings.embedded_mongodb_port)
            uri = await embedded.start()
        try:
            store = await GraphStore.open(
                uri,
                settings.mongodb_db,
                limits=settings.limits,
                timeout_ms=settings.mongodb_timeout_ms,
                validation_action=settings.validation_action,
                done_statuses=settings.done_statuses,
                history_days=settings.history_days,
                commit_outcome_wait_ms=settings.commit_outcome_wait_ms,
                idempotency_hours=settings.idempotency_hours,
                live=settings.live,
                tracer_provider=tracer_provider,
            )
        except BaseException:
            if embedded is not None:
                await embedded.stop()
            raise
        return cls(store=store, embedded=embedded)

    def supervise(self, max_restarts: int, on_failure: Callable[[str], None] = lambda _: None) -> None:
        """Keep the embedded mongod running (see EmbeddedMongo.supervise); `on_failure` hears when it cannot."""
        if self.embedded is None or self._supervisor is not None:
            return

        def give_up(reason: str) -> None:
            self.failure = reason
            log.critical("%s: the gateway cannot serve any more", reason)
            on_failure(reason)

        self._supervisor = asyncio.create_task(self.embedded.supervise(max_restarts, give_up))

    async def close(self) -> None:
        """Stop what runs beside serving, close MongoDB, then stop the embedded mongod. What asks MongoDB anything
        on the way (closing change streams, ending sessions) does so within one MongoDB deadline in all, and not
        at all once the embedded mongod is known gone (models.closing): the process then exits at once."""
        if self._closed:
            return
        self._closed = True
        bound = Bound(0 if self.failure is not None else self.store.timeout_s)
        await self.stop_writing_history(bound)
        await stop_task(self._retention, bound)
        await stop_task(self._supervisor, bound)
        try:
            await self.store.close(bound.left())
        finally:
            if self.embedded is not None:
                await self.embedded.stop()
