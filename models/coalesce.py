"""Reads of single tasks by id that arrive together, coalesced into one query (DataLoader-style micro-batching).

Under concurrent load, many reads of single tasks start within the same turn of the event loop. Each one sent as
its own `find` costs a round trip and, in MongoDB and in the driver, the same fixed work per operation (parsing,
planning, a read snapshot, cursor bookkeeping, the driver's deadline). Reads that start in the same turn are
sent as one `find({_id: {$in: [...]}})` instead, run at the end of that turn, with the same read concern as any
read. Nothing is cached: every read is answered by a query sent after it started, so it sees every write that
was acknowledged before it started.

Each caller keeps its own answer (its task, or None when no task has that id) and its own deadline (the caller's
own bound: leaving early does not cancel the query the others wait for). A failed query fails each caller that
joined it, with its own copy of the error.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from collections.abc import Awaitable, Callable, Collection

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from models.log_context import fresh_context
from models.stored_task import TaskDoc

BATCH_MAX = 1000
"""Ids per query at most: a larger crowd of reads is sent as several queries, each answer well within a batch."""
Fetch = Callable[[Collection[int]], Awaitable[dict[int, TaskDoc]]]
"""The tasks that exist among some ids, by id (unknown ids absent), within its own deadline."""
_Outcome = TaskDoc | None | BaseException
_SPAN: contextvars.ContextVar[Span | None] = contextvars.ContextVar("coalesced_read_span", default=None)
"""The span of the coalesced read running in this (fresh) context, to be ended when it is answered."""


class CoalescedReads:
    """`get(task_id)`: the task (or None), read together with every other `get` started in the same turn."""

    def __init__(self, fetch: Fetch, tracer: Tracer | None = None) -> None:
        self._fetch = fetch
        self._waiting: dict[int, list[asyncio.Future[_Outcome]]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._tracer = tracer
        self._callers: list[Span] = []
        """The sampled spans of the callers waiting (with a tracer only): the query is traced in the first's."""

    async def get(self, task_id: int) -> TaskDoc | None:
        """The stored task `task_id` as readers see it, or None; raises what the query raised (a copy)."""
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._send, loop)
        future: asyncio.Future[_Outcome] = loop.create_future()
        self._waiting.setdefault(task_id, []).append(future)
        if self._tracer is not None:
            caller = trace.get_current_span()
            if caller.is_recording():  # sampled (tracing_now), looked up once
                self._callers.append(caller)
        if len(self._waiting) >= BATCH_MAX:
            self._send(loop)
        outcome = await future
        if isinstance(outcome, BaseException):
            raise _own_copy(outcome) from None
        return outcome

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting, self._waiting = self._waiting, {}
        callers, self._callers = self._callers, []
        if not waiting:  # sent already, when it grew to BATCH_MAX
            return
        # A fresh context: the query must not inherit a caller's deadline (pymongo.timeout). Its log lines carry
        # the request id of the caller whose read opened it (this runs in that caller's context, as the first
        # caller scheduled it), the one whose trace the query is in: lines are written once, for all callers.
        fresh = fresh_context()
        if self._tracer is not None and callers:
            fresh.run(_traced_in_first_caller, self._tracer, callers, len(waiting))
        task = loop.create_task(self._answer(waiting), context=fresh)
        self._running.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._running.discard)

    async def _answer(self, waiting: dict[int, list[asyncio.Future[_Outcome]]]) -> None:
        span = _SPAN.get()
        try:
            await self._answer_all(waiting)
        finally:
            if span is not None:
                span.end()

    async def _answer_all(self, waiting: dict[int, list[asyncio.Future[_Outcome]]]) -> None:
        try:
            found = await self._fetch(waiting.keys())
        except Exception as error:  # handed to every caller
            for futures in waiting.values():
                _resolve(futures, error)
            return
        except BaseException:  # cancelled (the loop closing): callers still waiting learn it rather than hang
            for futures in waiting.values():
                for future in futures:
                    future.cancel()
            raise
        for task_id, futures in waiting.items():
            _resolve(futures, found.get(task_id))


def _traced_in_first_caller(tracer: Tracer, callers: list[Span], ids: int) -> None:
    """In the query's fresh context: the query's commands traced in the first caller's trace. A read several
    callers joined is a span of its own there, linked to the others' spans (each of their traces leads to it);
    a read of one caller's is no more than its command (the common case when the gateway is not busy)."""
    first, others = callers[0], callers[1:]
    if not others:
        otel_context.attach(trace.set_span_in_context(first))
        return
    span = tracer.start_span(
        "coalesced read",
        context=trace.set_span_in_context(first),
        links=[trace.Link(caller.get_span_context()) for caller in others],
        attributes={"tracking.reads.requests": len(callers), "tracking.reads.ids": ids},
    )
    otel_context.attach(trace.set_span_in_context(span))
    _SPAN.set(span)


def _own_copy(error: BaseException) -> BaseException:
    """A copy of the query's error for one caller (each raise adds to an exception's traceback); the error
    itself for a type that cannot be copied."""
    try:
        return copy.copy(error)
    except Exception:
        return error


def _resolve(futures: list[asyncio.Future[_Outcome]], outcome: _Outcome) -> None:
    for future in futures:
        if not future.done():  # a caller whose own deadline passed has gone (its future is cancelled)
            future.set_result(outcome)
