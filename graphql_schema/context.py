"""Per-request context: the graph store, the bounds, and the DataLoaders (tasks by id, jobs' summaries and
whole task lists by job id, tasks' histories, walks from tasks) that batch what nested fields ask for into one
MongoDB round trip. Both the resolvers and the compiled path read through them: one read model."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

from opentelemetry.trace import Tracer
from strawberry.dataloader import Batch, DataLoader, DefaultCache
from strawberry.extensions import SchemaExtension
from strawberry.fastapi import BaseContext
from strawberry.types.graphql import OperationType

from models import (
    Direction,
    GraphCycle,
    GraphStore,
    HistoryPage,
    JobStages,
    JobSummary,
    TaskDoc,
    TooManySubscriptions,
    TraversalTooLarge,
    defaults,
)
from models.jobs import LEVELS_BOUND_FACTOR
from models.metrics import SUBSCRIPTIONS_REFUSED
from web.auth import Caller, Callers, Credential, RepeatedCredential
from web.bearer import BearerRefused
from web.limits import RequestLimits
from web.rate_limits import CallerLimits
from web.state import act_as, store_for

COST_PER_TRAVERSAL_TASK = 110
"""Without TRACKING_GRAPHQL_MAX_COST, the budget is this many times TRACKING_GRAPHQL_MAX_TRAVERSAL (T): the
README's page of 100 tasks each with its transitive blockedBy (about 101 T, graphql_schema.cost), every query of
the live view (at most 22 T) and a whole job with each task's history page and direct blockedBy (61 T) fit; a whole
job's transitive walks (T x T) or thirty aliases of a whole job do not."""
MIN_DEFAULT_COST = 100_000
"""The default budget is never below this: a gateway with a small traversal bound still answers a few levels of
nested links (each level multiplies the estimate by 10)."""


def levels_bound(max_traversal: int) -> int:
    """The most tasks Job.levels (and a taskPage by stage) reads: LEVELS_BOUND_FACTOR times
    TRACKING_GRAPHQL_MAX_TRAVERSAL (links and statuses only, not whole tasks)."""
    return LEVELS_BOUND_FACTOR * max_traversal


def default_max_cost(max_traversal: int) -> int:
    """The budget of an operation when TRACKING_GRAPHQL_MAX_COST is not set."""
    return max(COST_PER_TRAVERSAL_TASK * max_traversal, MIN_DEFAULT_COST)


HistoryKey = tuple[int, int, str | None]
"""A history asked for: of which task, how many of its newest changes at most, older than which cursor (None:
the newest)."""
WalkKey = tuple[int, Direction, int | None]
"""A walk asked for: from which task, over which links, how many levels at most (None: all)."""


_K = TypeVar("_K")
_V = TypeVar("_V")


class SharedLoader(DataLoader[_K, _V]):
    """A DataLoader whose shared reads survive one awaiter's cancellation for the others. Several fields await one
    read (two aliases of a job's counts, a task every walk meets); graphql-core cancels the pending siblings of a
    field whose error nulls their parent, and cancelling a task cancels the future it awaits, shared: the other
    fields got CancelledError (a plain-text 500). An awaiter whose read was cancelled by another's cancellation,
    not its own, reads again. (The read itself is still cancelled with its awaiters, as the DataLoader does: a
    MongoDB command cancelled unwinds, where one left running after its operation kept the driver's topology lock
    and hung the client's close.) And a batch all of whose reads were cancelled before it was sent is not joined
    again: it stayed the loader's current batch, never sent, and the field-by-field answer after the compiled
    path's waited forever."""

    def load(self, key: _K) -> Awaitable[_V]:
        return self._awaited(key, self._load(key))

    def _load(self, key: _K) -> Awaitable[_V]:
        if self.batch is not None and _never_sent(self.batch):
            self.batch = None
        return super().load(key)

    async def _awaited(self, key: _K, shared: Awaitable[_V]) -> _V:
        while True:
            try:
                return await shared
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():  # this awaiter's own cancellation
                    raise
                shared = self._load(key)  # another awaiter's cancellation ended the read: read it again


def _never_sent(batch: Batch[Any, Any]) -> bool:
    """Whether a batch's reads were all cancelled before it was sent: its dispatch was cancelled with them, and
    will never run."""
    return not batch.dispatched and bool(batch.tasks) and all(task.future.cancelled() for task in batch.tasks)


class Context(BaseContext):
    def __init__(
        self,
        store: GraphStore,
        max_traversal: int,
        caller: Caller | None,
        callers: Callers,
        limits: RequestLimits,
        max_page: int,
        resume_within_s: float,
        max_cost: int | None = None,
        max_subscriptions: int = defaults.SUBSCRIPTIONS_PER_CONNECTION,
        max_history: int = defaults.MAX_HISTORY,
    ) -> None:
        super().__init__()
        self.all_tasks = store
        """The graph store unscoped: `store` is it as the caller may see it (`grant`)."""
        self.store = store_for(store, caller)
        self.callers = callers
        self.limits = limits
        self.max_traversal = max_traversal
        self.max_cost = max_cost if max_cost is not None else default_max_cost(max_traversal)
        """The budget of an operation's estimated cost (TRACKING_GRAPHQL_MAX_COST; graphql_schema.cost)."""
        self.max_event_cost = defaults.MAX_EVENT_COST
        """The budget of a subscription's estimated cost per event (TRACKING_GRAPHQL_MAX_EVENT_COST)."""
        self.max_page = max_page
        self.max_history = max_history
        """Most changes a history field returns per task (TRACKING_GRAPHQL_MAX_HISTORY)."""
        self.resume_within_s = resume_within_s
        self.caller: Caller | None = None
        """Who is calling (web.auth.Callers); None before a WebSocket's connection_init names them."""
        self.grant(caller)
        self.over_websocket = False
        self.credential: Credential | None = None
        """The credential of the HTTP request or WebSocket upgrade (a connection_init payload must agree)."""
        self.repeated_credential: RepeatedCredential | None = None
        """A WebSocket upgrade's repeated X-Auth-Token, refused before the socket is accepted."""
        self.refused_bearer: BearerRefused | None = None
        """A WebSocket upgrade's refused bearer token, refused before the socket is accepted."""
        self.max_subscriptions = max_subscriptions
        """Most subscriptions open at once on this context's WebSocket (TRACKING_SUBSCRIPTIONS_PER_CONNECTION)."""
        self.subscriptions_open = 0
        self.caller_limits: CallerLimits | None = None
        """Every caller's open subscriptions in this process (TRACKING_SUBSCRIPTIONS_PER_CALLER)."""
        self.compiled = True
        """Whether queries graphql_schema.compiled recognises are answered by it (TRACKING_GRAPHQL_COMPILED)."""
        self.tracer: Tracer | None = None
        """Where operation spans go (graphql_schema.tracing); None when the gateway traces nothing."""
        self._read_tasks = DefaultCache[int, TaskDoc | None]()
        self.tasks = SharedLoader[int, TaskDoc | None](load_fn=self._load_tasks, cache_map=self._read_tasks)
        self.job_summaries = SharedLoader[str, JobSummary | None](load_fn=self._load_summaries)
        self.job_tasks = SharedLoader[str, list[TaskDoc]](load_fn=self._load_job_tasks)
        self.histories = SharedLoader[HistoryKey, HistoryPage](load_fn=self._load_histories)
        self.walks = SharedLoader[WalkKey, list[TaskDoc]](load_fn=self._load_walks)
        self.job_stages = SharedLoader[str, JobStages](load_fn=self._load_job_stages)

    def grant(self, caller: Caller | None) -> None:
        """Who is calling: nothing allowed without a caller, queries and subscriptions with any, mutations with
        one that may write; every read and write through `store` narrowed to the caller's jobs."""
        self.caller = caller
        self.store = store_for(self.all_tasks, caller)
        if caller is not None:
            act_as(caller)  # the operations of a WebSocket run in tasks started after this

    @property
    def audience(self) -> Hashable:
        """What this caller may see, as far as a subscription's answers differ by it (nested fields read through
        the caller's `store`): subscriptions of callers with the same audience share each event's answer
        (graphql_schema.event_payloads). The caller's job prefixes; None: every job."""
        return self.caller.jobs if self.caller is not None else None

    @property
    def authenticated(self) -> bool:
        return self.caller is not None

    @property
    def can_write(self) -> bool:
        return self.caller is not None and self.caller.may_write

    def count_subscription(self, selection: Hashable) -> None:
        """One more subscription open on this connection and of its caller, of `selection`
        (graphql_schema.event_payloads.caller_selection); TooManySubscriptions past any bound (nothing counted).
        `end_subscription` when it ends."""
        if self.subscriptions_open >= self.max_subscriptions:
            raise self.connection_refusal()
        if self.caller_limits is not None and self.caller is not None:
            refusal = self.caller_limits.open_subscription(self.caller, selection)
            if refusal is not None:
                SUBSCRIPTIONS_REFUSED.labels("caller").inc()
                raise TooManySubscriptions(refusal)
        self.subscriptions_open += 1

    def connection_refusal(self) -> TooManySubscriptions:
        """The refusal of a subscription past TRACKING_SUBSCRIPTIONS_PER_CONNECTION, counted."""
        SUBSCRIPTIONS_REFUSED.labels("connection").inc()
        return TooManySubscriptions(
            f"too many subscriptions on this connection: at most {self.max_subscriptions} "
            "(TRACKING_SUBSCRIPTIONS_PER_CONNECTION); complete one first or open another connection"
        )

    def end_subscription(self, selection: Hashable) -> None:
        """A subscription `count_subscription` counted has ended."""
        self.subscriptions_open -= 1
        if self.caller_limits is not None and self.caller is not None:
            self.caller_limits.close_subscription(self.caller, selection)

    async def _load_summaries(self, job_ids: Sequence[str]) -> list[JobSummary | None]:
        """Every job of a page of jobs summarised by one aggregation."""
        found = await self.store.job_summaries(job_ids)
        return [found.get(job_id) for job_id in job_ids]

    async def _load_job_tasks(self, job_ids: Sequence[str]) -> list[list[TaskDoc] | BaseException]:
        """Whole jobs, each loaded once per request however many fields (tasks, roots, edges) need it; a job
        over the bound fails only the fields that asked for it."""
        loaded: list[list[TaskDoc] | BaseException] = []
        for job_id in job_ids:
            try:
                loaded.append(await self.store.job_tasks(job_id, self.max_traversal))
            except TraversalTooLarge as error:
                loaded.append(error)
        return loaded

    async def _load_job_stages(self, job_ids: Sequence[str]) -> list[JobStages | BaseException]:
        """Each job's tasks by stage, read once per request however many fields need them (Job.levels, a
        taskPage by stage: aliases of them are one read); a job over the bound, or with a cycle, fails only the
        fields that asked for it."""
        loaded: list[JobStages | BaseException] = []
        for job_id in job_ids:
            try:
                loaded.append(await self.store.job_stages(job_id, levels_bound(self.max_traversal)))
            except (TraversalTooLarge, GraphCycle) as error:
                loaded.append(error)
        return loaded

    async def stage(self, job_id: str, depth: int | None) -> list[int] | None:
        """The ids of a job's tasks at stage `depth` (a taskPage's filter), None without a depth."""
        return None if depth is None else (await self.job_stages.load(job_id)).ids_at(depth)

    async def _load_tasks(self, ids: Sequence[int]) -> list[TaskDoc | None]:
        """One MongoDB round trip for every task asked for in the same tick, e.g. one level of a traversal."""
        found = await self.store.get_tasks(ids)
        return [found.get(task_id) for task_id in ids]

    async def _load_histories(self, keys: Sequence[HistoryKey]) -> list[HistoryPage]:
        """Every history asked for in the same tick, those of one page size together in one read."""
        pages: dict[HistoryKey, HistoryPage] = {}
        groups: dict[tuple[int, str | None], list[int]] = {}
        for task_id, last, before in dict.fromkeys(keys):
            groups.setdefault((last, before), []).append(task_id)
        for (last, before), ids in groups.items():
            found = await self.read_histories(ids, last, before)
            pages.update(((task_id, last, before), page) for task_id, page in zip(ids, found, strict=True))
        return [pages[key] for key in keys]

    async def read_histories(self, ids: Sequence[int], last: int, before: str | None = None) -> list[HistoryPage]:
        """The newest `last` changes of every task of a list, in its order, in one query (two when a task has
        more): what `histories` batches for the resolvers, and what the compiled path reads for a whole list at
        once (without a future per task)."""
        found = await self.store.task_histories(ids, last, before)
        return [found[task_id] for task_id in ids]

    async def _load_walks(self, keys: Sequence[WalkKey]) -> list[list[TaskDoc] | BaseException]:
        """Every walk asked for in the same tick, the walks of each (direction, depth) together over the tasks
        this request already read (GraphStore.walk_many); the tasks read on the way answer later fields."""
        answers: dict[WalkKey, list[TaskDoc] | BaseException] = {}
        groups: dict[tuple[Direction, int | None], list[int]] = {}
        for task_id, direction, max_depth in dict.fromkeys(keys):
            groups.setdefault((direction, max_depth), []).append(task_id)
        for (direction, max_depth), ids in groups.items():
            known = self.known_tasks()  # the resolvers remember a task before asking for its walk
            if any(task_id not in known for task_id in ids):
                # The operation has its answer and forgot its reads (forget_reads): no field waits for this one.
                answers.update(((task_id, direction, max_depth), []) for task_id in ids)
                continue
            walks = await self.walk_from_each([known[task_id] for task_id in ids], direction, max_depth)
            for task_id, found in zip(ids, walks, strict=True):
                answers[task_id, direction, max_depth] = found
        return [answers[key] for key in keys]

    async def walk_from_each(
        self, starts: Sequence[TaskDoc], direction: Direction, max_depth: int | None
    ) -> list[list[TaskDoc] | TraversalTooLarge]:
        """The walk from each start (GraphStore.walk_many over the tasks this request has read, the starts
        included), each refused on its own past the traversal bound: what `walks` batches for the resolvers, and
        what the compiled path reads for a whole list at once. The tasks read on the way answer later fields."""
        known = self.known_tasks()
        known.update((doc["_id"], doc) for doc in starts)
        walks = await self.store.walk_many(starts, direction, max_depth, self.max_traversal, known)
        self.remember(walks.fetched)
        return walks.found

    def known_tasks(self) -> dict[int, TaskDoc]:
        """Every task this request has read so far (whole documents), by id."""
        known: dict[int, TaskDoc] = {}
        for future in self._read_tasks.cache_map.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                doc = future.result()
                if doc is not None:
                    known[doc["_id"]] = doc
        return known

    def cached_tasks(self, ids: Sequence[int]) -> list[TaskDoc | None] | None:
        """The tasks this request has already fetched, or None if any of them still has to be loaded."""
        docs = []
        for task_id in ids:
            future = self.tasks.cache_map.get(task_id)
            if future is None or not future.done() or future.cancelled() or future.exception() is not None:
                return None
            docs.append(future.result())
        return docs

    def forget_reads(self) -> None:
        """Drop what this context's DataLoaders hold (tasks, jobs, histories, walks read), once an operation has
        its answer: a WebSocket's context serves every operation of its connection, which must not answer from
        an earlier operation's reads nor keep them all for as long as it stays open; and a context is in a
        reference cycle with its DataLoaders (their load functions are its methods), so what they hold would
        otherwise wait for a full garbage collection. A batch not dispatched yet is left to its operation."""
        for loader in (self.tasks, self.job_summaries, self.job_tasks, self.histories, self.walks, self.job_stages):
            loader.clear_all()
            if loader.batch is not None and loader.batch.dispatched:
                loader.batch = None

    def remember(self, docs: Sequence[TaskDoc]) -> None:
        """Tasks already fetched (a job's, a mutation's) need no second trip when a nested field asks again."""
        for doc in docs:
            self.tasks.prime(doc["_id"], doc, force=True)


class ForgetReads(SchemaExtension):
    """Once a query or mutation has its answer, its context forgets what it read (Context.forget_reads); a
    subscription's stream keeps its reads while it runs, each event reading afresh."""

    def on_execute(self) -> Iterator[None]:
        yield
        execution = self.execution_context
        if isinstance(execution.context, Context) and execution.operation_type is not OperationType.SUBSCRIPTION:
            execution.context.forget_reads()
