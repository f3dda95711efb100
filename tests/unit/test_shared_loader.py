"""graphql_schema.context.SharedLoader: a read several fields await, none of whose cancellations reaches it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Sequence
from typing import Any

from graphql_schema.context import SharedLoader


def failing_read() -> tuple[asyncio.Event, asyncio.Event, Callable[[Sequence[int]], Any]]:
    """A load function that starts, then fails with LookupError once told to."""
    started, failing = asyncio.Event(), asyncio.Event()

    async def load(keys: Sequence[int]) -> list[int]:
        started.set()
        await failing.wait()
        raise LookupError(f"{list(keys)} gone")

    return started, failing, load


async def test_a_field_cancelled_leaves_its_twin_the_reads_own_error() -> None:
    started, failing, load = failing_read()
    loader = SharedLoader[int, int](load_fn=load)
    first, twin = asyncio.ensure_future(loader.load(1)), asyncio.ensure_future(loader.load(1))
    await started.wait()
    first.cancel()  # graphql-core cancels a field whose sibling's error nulled their parent
    failing.set()
    try:
        await twin
    except LookupError as error:
        assert "gone" in str(error), "the twin gets the read's own error"
    else:
        raise AssertionError("the read's error reaches the twin")
    assert first.cancelled()


async def test_a_read_whose_awaiters_were_all_cancelled_ends_and_its_error_is_logged_nowhere() -> None:
    unhandled: list[str] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unhandled.append(context["message"]))
    started, failing, load = failing_read()
    loader = SharedLoader[int, int](load_fn=load)
    alone = asyncio.ensure_future(loader.load(2))
    await started.wait()
    alone.cancel()
    await asyncio.sleep(0)
    failing.set()
    for _ in range(5):
        await asyncio.sleep(0)
    loader.clear_all()  # the operation has its answer: its reads are forgotten (Context.forget_reads)
    loader.batch = None
    del alone
    gc.collect()  # an unretrieved error is reported when its future is collected
    await asyncio.sleep(0)
    assert not unhandled, unhandled  # asyncio's "Future exception was never retrieved", logged at ERROR
