"""Per-request context: the graph store, the bounds, and the DataLoaders (tasks by id, jobs' summaries and
whole task lists by job id) that batch what nested fields ask for into one MongoDB round trip."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context as OtelContext
from opentelemetry.trace import Tracer
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from gateway.auth import Access, TokenRegistry
from models import GraphStore, JobSummary, TaskDoc, TraversalTooLarge, defaults


class Context(BaseContext):
    def __init__(
        self,
        store: GraphStore,
        max_traversal: int,
        access: Access | None,
        tokens: TokenRegistry,
        max_page: int = defaults.MAX_PAGE,
        resume_within_s: float = defaults.SUBSCRIPTION_RESUME_MS / 1000,
    ) -> None:
        super().__init__()
        self.store = store
        self.tokens = tokens
        self.max_traversal = max_traversal
        self.max_page = max_page
        self.resume_within_s = resume_within_s
        self.authenticated = False
        self.can_write = False
        self.grant(access)
        self.over_websocket = False
        self.compiled = True
        """Whether queries graphql_schema.compiled recognises are answered by it (TRACKING_GRAPHQL_COMPILED)."""
        self.tracer: Tracer | None = None
        """Where operation spans go (graphql_schema.tracing); None when the gateway traces nothing."""
        self.trace_parent: OtelContext | None = None
        """The trace a WebSocket's operations continue (its handshake's traceparent); None: the current one."""
        self.tasks = DataLoader[int, TaskDoc | None](load_fn=self._load_tasks)
        self.job_summaries = DataLoader[str, JobSummary | None](load_fn=self._load_summaries)
        self.job_tasks = DataLoader[str, list[TaskDoc]](load_fn=self._load_job_tasks)

    def grant(self, access: Access | None) -> None:
        """What the token presented allows: nothing without one, queries and subscriptions with any, mutations
        with a TRACKING_API_TOKENS one."""
        self.authenticated = access is not None
        self.can_write = access is not None and access.may_write

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

    async def _load_tasks(self, ids: Sequence[int]) -> list[TaskDoc | None]:
        """One MongoDB round trip for every task asked for in the same tick, e.g. one level of a traversal."""
        found = await self.store.get_tasks(ids)
        return [found.get(task_id) for task_id in ids]

    def cached_tasks(self, ids: Sequence[int]) -> list[TaskDoc | None] | None:
        """The tasks this request has already fetched, or None if any of them still has to be loaded."""
        docs = []
        for task_id in ids:
            future = self.tasks.cache_map.get(task_id)
            if future is None or not future.done() or future.cancelled() or future.exception() is not None:
                return None
            docs.append(future.result())
        return docs

    def remember(self, docs: Sequence[TaskDoc]) -> None:
        """Tasks already fetched (a job's, a mutation's) need no second trip when a nested field asks again."""
        for doc in docs:
            self.tasks.prime(doc["_id"], doc, force=True)
