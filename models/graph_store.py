"""The graph store: the one entry point REST and GraphQL call for every read and write of tasks, their links and
their jobs. It holds no rule of its own: each method bounds the work by the deadline (models.deadline) and hands
it to the part that knows it:

- models.creation (planning a create, without MongoDB) and models.ids (id counter, inserting under free ids);
- models.records (one task: read, patch, delete);
- models.links (adding and removing links, refusing cycles; models.locks for concurrency);
- models.walks (neighbours and everything reachable);
- models.jobs (listing jobs, their summaries, tasks, stages and critical path: models.jobs.queries);
- models.events (the change stream subscriptions follow), models.history, models.check.

Documents come back as the raw dicts MongoDB stores (the stored layout of models.stored_task, `_id` = task id) rather
than Beanie models: re-validating thousands of documents MongoDB just returned is the largest cost on read paths,
and the stored layout is already what ops tooling reads.

Every method that reads or writes MongoDB raises StorageUnavailable when MongoDB is unreachable or gives no
answer within the deadline (TRACKING_MONGODB_TIMEOUT_MS), and InvalidOperation when a task or a change is larger
than MongoDB holds; the errors each method names come on top of these.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry.trace import Tracer, TracerProvider

from models.batch_walks import ManyWalks, walk_many
from models.check import CheckReport, check_graph
from models.closing import Bound, close_clients
from models.coalesce import CoalescedReads
from models.conditions import Preconditions
from models.connection import make_client, ping, prepare_database, require_transactions
from models.creation import Render, client_ids_of, plan_creation
from models.deadline import bounded
from models.defaults import (
    COMMIT_OUTCOME_WAIT_MS,
    DONE_STATUSES,
    HISTORY_DAYS,
    IDEMPOTENCY_HOURS,
    MONGODB_TIMEOUT_MS,
    SUBSCRIPTION_RESUME_MS,
    VALIDATION_ACTION,
)
from models.documents import TaskRecord
from models.errors import TaskNotFound, TraversalTooLarge
from models.events import TaskEvent, current_event_cursor, full_document_mode, seen_in_scope
from models.fanout import LiveEvents, LiveLimits
from models.history import prepare_history
from models.history_reads import HistoryPage, read_history_pages
from models.history_writer import HistoryWriter
from models.idempotency import IdempotencyKey, IdempotencyRecords
from models.ids import TASK_COUNTER, FirstWrite, IdAllocator
from models.jobs.queries import JobQueries
from models.jobs.reads import JobReads
from models.lifecycle import Lifecycle
from models.limits import Limits
from models.links import Links
from models.records import Records
from models.scoped_views import ScopedViews
from models.scopes import any_in_scope, planned_jobs
from models.storage import Storage
from models.stored_task import Database, MongoClient, TaskDoc
from models.subscriber import Visibility
from models.task import TaskCreate, TaskPatch
from models.tokens import NamedTokens
from models.tracing import store_tracer
from models.transactions import finishing
from models.walks import Direction, Walks

_T = TypeVar("_T")


class GraphStore(JobQueries, ScopedViews):
    """Tasks and their links in MongoDB, and whole jobs (JobQueries). Multi-document changes run in one majority
    transaction."""

    def __init__(
        self,
        client: MongoClient,
        database: Database,
        *,
        limits: Limits | None = None,
        timeout_s: float = MONGODB_TIMEOUT_MS / 1000,
        done_statuses: Iterable[str] = DONE_STATUSES,
        commit_wait_s: float = COMMIT_OUTCOME_WAIT_MS / 1000,
        idempotency_hours: float = IDEMPOTENCY_HOURS,
        tracer: Tracer | None = None,
    ) -> None:
        """A store over `database`, with collections of its own: several stores (tests standing in for several
        gateway processes) can share a process without sharing any state."""
        self.tracer = tracer
        """Where the spans of work no request starts (history batches, subscriptions' streams) go; None: none."""
        self._client = client
        self._database = database
        self._storage = Storage(client, database, commit_wait_s)
        self._keys = IdempotencyRecords(database, idempotency_hours)
        self.limits = limits or Limits()
        self.timeout_s = timeout_s
        self.done_statuses = frozenset(done_statuses)
        self.full_document = full_document_mode(keeps_images=False)
        self._ids = IdAllocator(self._storage)
        self._records = Records(self._storage)
        self._single_reads = CoalescedReads(self.get_tasks, tracer)
        self._links = Links(self._storage)
        self._walks = Walks(self._storage)
        self._jobs = JobReads(self._storage, self.done_statuses)
        self._live_client: MongoClient | None = None
        self._scoped: dict[tuple[str, ...], GraphStore] = {}
        self.live = LiveEvents(self._storage.tasks, self.full_document)
        """The fan-out of live events; `open` gives it a client (and pool) of its own."""

    @classmethod
    async def open(
        cls,
        uri: str,
        db_name: str,
        *,
        limits: Limits | None = None,
        timeout_ms: int = MONGODB_TIMEOUT_MS,
        validation_action: str = VALIDATION_ACTION,
        done_statuses: Iterable[str] = DONE_STATUSES,
        history_days: int = HISTORY_DAYS,
        commit_outcome_wait_ms: int = COMMIT_OUTCOME_WAIT_MS,
        idempotency_hours: float = IDEMPOTENCY_HOURS,
        live: LiveLimits | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> GraphStore:
        """A store connected to `uri`, database `db_name`, with the validators and indexes installed; live
        events (`watch_task_events`) on a client of their own, bounded by `live`; with `tracer_provider`, its
        MongoDB commands and background work are traced (models.tracing).
        Raises TransactionsUnsupported on a standalone server, StorageUnavailable when MongoDB does not answer."""
        tracer = store_tracer(tracer_provider)
        client = make_client(uri, timeout_ms=timeout_ms, tracer=tracer)
        live = live or LiveLimits()
        live_client = make_client(uri, timeout_ms=timeout_ms, pool_size=live.pool_size, purpose="live", tracer=tracer)
        try:
            await require_transactions(client)
            database, keeps_images = await prepare_database(client, db_name, validation_action)
            await prepare_history(database, history_days)
            store = cls(
                client,
                database,
                limits=limits,
                timeout_s=timeout_ms / 1000,
                done_statuses=done_statuses,
                commit_wait_s=commit_outcome_wait_ms / 1000,
                idempotency_hours=idempotency_hours,
                tracer=tracer,
            )
            store.full_document = full_document_mode(keeps_images)
            live_tasks = live_client.get_database(db_name, codec_options=database.codec_options)[
                TaskRecord.Settings.name
            ]
            store.live = LiveEvents(live_tasks, store.full_document, live, tracer)
            store._live_client = live_client
            await store.sync_id_counter()
        except BaseException:
            await client.close()
            await live_client.close()
            raise
        return store

    async def close(self, within_s: float | None = None) -> None:
        """Stop the live events, let the transactions being finished in the background end, and close the clients
        (their connections and monitors), asking MongoDB for at most `within_s` in all (default: the deadline; 0
        when MongoDB is known gone) (models.closing)."""
        bound = Bound(self.timeout_s if within_s is None else within_s)
        await self.live.close(bound)
        await finishing(bound.left())
        await close_clients((self._live_client, self._client), bound)

    async def is_ready(self, timeout_s: float = 1.0) -> bool:
        """Whether MongoDB answers within `timeout_s` (for /readyz, whose probes give up after a few seconds);
        never raises."""
        return await ping(self._client, timeout_s)

    async def check(self, *, repair: bool = False) -> CheckReport:
        """What a scan of the stored graph found that other tools broke and, with `repair`, what it fixed of it
        (models.check). A maintenance scan of the whole collection: not bounded by the per-request deadline."""
        return await check_graph(self._storage.tasks, self._storage.in_transaction if repair else None)

    def lifecycle(self) -> Lifecycle:
        """Archive, restore and purge of whole jobs (models.lifecycle): maintenance work, not bounded by the
        per-request deadline."""
        return Lifecycle(self._database, self._storage.in_transaction, TASK_COUNTER)

    def named_tokens(self) -> NamedTokens:
        """The named API tokens (models.tokens): the command line manages them, gateways keep them in memory."""
        return NamedTokens(self._database)

    def history_writer(self, owner: str) -> HistoryWriter:
        """This process's candidate for writing the task history (models.history_writer); run it as a task."""
        return HistoryWriter(self._database, owner, full_document=self.full_document, tracer=self.tracer)

    @bounded
    async def task_history(self, task_id: int, last: int, before: str | None = None) -> HistoryPage:
        """The task's newest `last` recorded changes (older than the cursor `before`, when given), oldest first,
        deleted tasks included (within the retention), and whether older ones were left out
        (models.history_reads)."""
        return (await read_history_pages(self._database, [task_id], last, self.scope, before))[task_id]

    @bounded
    async def task_histories(
        self, task_ids: Collection[int], last: int, before: str | None = None
    ) -> dict[int, HistoryPage]:
        """Each task's newest `last` recorded changes (older than the cursor `before`, when given), oldest first,
        by task id, in one query (or two) however many tasks and however long their histories
        (models.history_reads); an empty page for a task without any."""
        return await read_history_pages(self._database, task_ids, last, self.scope, before)

    # ---- create ---------------------------------------------------------------------------------------------

    @bounded
    async def sync_id_counter(self) -> None:
        """Move the id counter past every stored id in its range (models.ids), e.g. after ops tooling inserted
        tasks directly."""
        await self._ids.sync_counter()

    @bounded
    async def create_tasks(
        self, tasks: Sequence[TaskCreate] | Sequence[dict[str, Any]], key: IdempotencyKey | None = None
    ) -> list[TaskDoc]:
        """The stored tasks of a create, nested `nexts` sub-graphs included, in request order (depth-first), all
        created or none. InvalidOperation for an empty or oversized create or an id given twice (models.creation),
        TaskAlreadyExists for a given id already stored, IdAllocationFailed when no free server ids are found.

        With an idempotency `key` (models.idempotency): a create already committed under it with the same tasks
        is not stored again, and its tasks come back as it created them; IdempotencyKeyReused when it had other
        tasks, IdempotencyKeyInFlight while one with the key is still running. CommitOutcomeUnknown when the
        commit was sent and its outcome could not be learned (as every transaction: models.transactions)."""
        return await self._create(tasks, _stored, key)

    @bounded
    async def create_tasks_rendered(
        self,
        tasks: Sequence[TaskCreate] | Sequence[dict[str, Any]],
        render: Render[_T],
        key: IdempotencyKey | None = None,
    ) -> list[_T]:
        """`create_tasks`, each stored task given to `render(doc, docs_by_id)` (models.creation.Render) while
        MongoDB inserts the tasks rather than after the commit: the front end's answer is encoded at the same
        time as mongod works, on the other core (Storage.insert_in_order). The results in request order, once
        all are stored (with a `key` recorded already, as they were created); the errors of `create_tasks`."""
        return await self._create(tasks, render, key)

    async def _create(
        self, tasks: Sequence[TaskCreate] | Sequence[dict[str, Any]], render: Render[_T], key: IdempotencyKey | None
    ) -> list[_T]:
        plan = plan_creation(tasks)
        if self.scope is not None:
            self._refuse_outside(planned_jobs(plan))
        client_ids = client_ids_of(plan, self.limits)

        async def create(first: FirstWrite | None = None) -> list[_T]:
            await self._ids.refuse_taken(client_ids)
            return await self._ids.insert(plan, client_ids, render, first)

        if key is None:
            return await create()
        return await self._keys.create_once(key, plan, create, render)

    # ---- read -----------------------------------------------------------------------------------------------

    @bounded
    async def get_task(self, task_id: int) -> TaskDoc:
        """The task; TaskNotFound. Reads of single tasks started in the same turn of the event loop are sent to
        MongoDB as one query (models.coalesce), each still bounded by its own deadline."""
        doc = await self._single_reads.get(task_id)
        if doc is None:
            raise TaskNotFound([task_id])
        return doc

    @bounded
    async def get_tasks(self, ids: Collection[int]) -> dict[int, TaskDoc]:
        """The tasks that exist among `ids`, by id (unknown ids are simply absent)."""
        return await self._storage.find_by_ids(ids)

    @bounded
    async def list_nexts(
        self, task_id: int, statuses: Collection[str] | None = None, task_type: str | None = None
    ) -> list[TaskDoc]:
        """The task's next tasks by ascending id, those with a status among `statuses` and of `task_type` when
        given; TaskNotFound."""
        return await self._walks.linked(task_id, "nexts", statuses, task_type)

    @bounded
    async def list_previous(
        self, task_id: int, statuses: Collection[str] | None = None, task_type: str | None = None
    ) -> list[TaskDoc]:
        """The task's previous tasks, as `list_nexts` gives its next ones; TaskNotFound."""
        return await self._walks.linked(task_id, "previous", statuses, task_type)

    @bounded
    async def list_job_tasks(self, job_id: str, root: bool | None = None) -> list[TaskDoc]:
        """A job's tasks by ascending id, those whose `root` equals `root` when it is given (REST's listing,
        which the legacy API defines without a bound); empty for an unknown job."""
        query: dict[str, Any] = {"job-id": job_id}
        if root is not None:
            query["root"] = root
        return await self._storage.find_sorted(query)

    @bounded
    async def event_cursor(self, job_id: str | None = None) -> str:
        """A cursor for this moment in the task events (of one job, if given): `watch_task_events(job_id,
        after=it)` gives every change made after it was taken (models.events.current_event_cursor);
        StorageUnavailable."""
        return await current_event_cursor(self._storage.tasks, self.full_document, job_id)

    def watch_task_events(
        self,
        job_id: str | None = None,
        after: str | None = None,
        *,
        resume_within_s: float = SUBSCRIPTION_RESUME_MS / 1000,
        visible: Visibility | None = None,
    ) -> AsyncGenerator[TaskEvent]:
        """The task events (of one job, if given, and of the jobs `visible` allows) after the event whose cursor
        is `after`, then live, from this process's shared change stream (models.fanout). Raises
        TooManySubscriptions past TRACKING_SUBSCRIPTIONS_MAX and, while iterated, CursorExpired for a cursor
        MongoDB cannot resume after, StorageUnavailable once the stream could not be resumed within
        `resume_within_s`, SubscriberTooSlow when the reader fell behind by more than its buffer."""
        shown = None
        if self.scope is not None:
            visible = visible or functools.partial(any_in_scope, scope=self.scope)
            shown = functools.partial(seen_in_scope, scope=self.scope)  # a task seen leaving: not as it now is
        return self.live.subscribe(job_id, after, resume_within_s=resume_within_s, visible=visible, shown=shown)

    @bounded
    async def walk(self, task: TaskDoc, direction: Direction, max_depth: int | None, bound: int) -> list[TaskDoc]:
        """Every task reachable from `task` over its `direction` links, nearest level first and by id within a
        level, up to `max_depth` levels (None: all); TraversalTooLarge past `bound` tasks (models.walks)."""
        return await self._walks.walk(task, direction, max_depth, bound)

    @bounded
    async def walk_many(
        self,
        starts: Sequence[TaskDoc],
        direction: Direction,
        max_depth: int | None,
        bound: int,
        known: Mapping[int, TaskDoc],
    ) -> ManyWalks:
        """`walk` from each start, each refused on its own past `bound` tasks: over the tasks in `known` (whole
        documents the caller already read) and one query per level for the others (models.batch_walks); a lone
        start whose first level is not known is one aggregation, as `walk`."""
        if len(starts) == 1 and any(i not in known for i in starts[0].get(direction) or ()):
            try:
                found = await self._walks.walk(starts[0], direction, max_depth, bound)
                return ManyWalks([found], found)
            except TraversalTooLarge as error:
                return ManyWalks([error], [])
        return await walk_many(starts, direction, max_depth, bound, known, self._storage.find_by_ids)

    # ---- update and delete ----------------------------------------------------------------------------------

    @bounded
    async def update_task(self, task_id: int, patch: TaskPatch, conditions: Preconditions | None = None) -> TaskDoc:
        """The task after merging `patch`: present fields replace, null clears, absent fields stay.
        InvalidOperation for a body id other than `task_id`; TaskNotFound; with `conditions`,
        PreconditionFailed unless the task's ETags satisfy them (models.conditions); JobOutsideScope for a move
        out of this store's scope."""
        if self.scope is not None and "job_id" in patch.model_fields_set:
            self._refuse_outside([patch.job_id])
        return await self._records.update(task_id, patch, conditions)

    @bounded
    async def delete_task(self, task_id: int, conditions: Preconditions | None = None) -> None:
        """Delete the task and every link to or from it; TaskNotFound; PreconditionFailed as `update_task`."""
        await self._records.delete(task_id, conditions)

    # ---- links ----------------------------------------------------------------------------------------------

    @bounded
    async def add_nexts(
        self, task_id: int, next_ids: Collection[int], conditions: Preconditions | None = None
    ) -> list[TaskDoc]:
        """Link task_id -> each next id; returns all next tasks of task_id after the change, by ascending id.
        InvalidOperation for a self-link or a link that would close a cycle; TaskNotFound (models.links)."""
        return await self._links.add(task_id, [(task_id, other) for other in next_ids], "nexts", conditions)

    @bounded
    async def add_previous(
        self, task_id: int, previous_ids: Collection[int], conditions: Preconditions | None = None
    ) -> list[TaskDoc]:
        """Link each previous id -> task_id; returns all previous tasks of task_id after the change, by ascending
        id. InvalidOperation for a self-link or a link that would close a cycle; TaskNotFound (models.links)."""
        return await self._links.add(task_id, [(other, task_id) for other in previous_ids], "previous", conditions)

    @bounded
    async def remove_nexts(
        self, task_id: int, next_ids: Collection[int], conditions: Preconditions | None = None
    ) -> None:
        """Unlink task_id -> each next id (links not stored are no error); TaskNotFound; PreconditionFailed."""
        await self._links.remove([(task_id, other) for other in next_ids], task_id, conditions)

    @bounded
    async def remove_previous(
        self, task_id: int, previous_ids: Collection[int], conditions: Preconditions | None = None
    ) -> None:
        """Unlink each previous id -> task_id (links not stored are no error); TaskNotFound; PreconditionFailed."""
        await self._links.remove([(other, task_id) for other in previous_ids], task_id, conditions)


def _stored(doc: TaskDoc, _: Mapping[int, TaskDoc]) -> TaskDoc:
    return doc
