"""Closing a gateway's backend with MongoDB gone (models.closing): what would ask MongoDB (ending sessions,
killing cursors) waits no longer than one MongoDB deadline in all, and not at all once the embedded mongod is
known gone, so that the process exits and its supervisor can replace it."""

from __future__ import annotations

import time

import pytest

from gateway.backend import Backend
from gateway.settings import load_settings
from tests.gateway.test_outages import kill
from tests.helpers import TOKEN, eventually, task

DEADLINE_S = 10.0


@pytest.mark.slow
async def test_a_backend_whose_mongod_cannot_be_restarted_closes_without_waiting_for_mongodb(tmp_path):
    settings = load_settings(
        api_tokens=TOKEN, data_dir=tmp_path / "var", mongodb_timeout_ms=int(DEADLINE_S * 1000), embedded_restarts=0
    )
    backend = await Backend.open(settings)
    failures: list[str] = []
    try:
        backend.start_background(settings, failures.append)
        await backend.store.create_tasks([task(id=1, job_id="j")])  # sessions pooled: the client would end them
        assert backend.embedded is not None
        kill(backend.embedded)

        async def given_up() -> bool:
            return bool(failures)

        await eventually(given_up, what="the supervisor giving up on the mongod")
    finally:
        started = time.monotonic()
        await backend.close()
        took = time.monotonic() - started
    # Asking the dead server anything would wait out a whole deadline (server selection) at least once.
    assert took < DEADLINE_S / 2, f"closing took {took:.1f}s"
