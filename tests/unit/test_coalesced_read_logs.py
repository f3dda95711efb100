"""A coalesced read runs in a context of its own (no caller's deadline), yet the lines it writes are for its
callers: they carry the request id of the caller whose read opened it (the one whose trace it is in)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Collection

from gateway.observability import log_handler
from models.coalesce import CoalescedReads
from models.log_context import REQUEST_ID
from models.stored_task import TaskDoc


async def test_a_line_written_by_a_coalesced_read_carries_its_first_caller_s_request_id() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.coalesced_read")
    logger.propagate, logger.disabled = False, False
    logger.handlers[:] = [log_handler("json", stream)]
    logger.setLevel(logging.INFO)

    async def fetch(ids: Collection[int]) -> dict[int, TaskDoc]:
        logger.warning("reading %d ids", len(ids))
        return {}

    reads = CoalescedReads(fetch)

    async def read_for(request_id: str, task_id: int) -> None:
        REQUEST_ID.set(request_id)
        assert await reads.get(task_id) is None

    await asyncio.gather(read_for("req-first", 1), read_for("req-second", 2))
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "reading 2 ids" and line["request_id"] == "req-first", line
