"""The graph store: every read and write of tasks and their links. REST and GraphQL both call this.

Documents come back as the raw dicts MongoDB stores (CONTRACT §3 layout, `_id` = task id) rather than Beanie
models: re-validating thousands of documents MongoDB just returned is the largest cost on read paths, and the
stored layout is already the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import pymongo
from bson.int64 import Int64
from bson.timestamp import Timestamp
from pymongo import ASCENDING, ReadPreference, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from models.changes import Change, Idle, ResumeToken, StreamItem, read_changes
from models.check import CheckReport, check_graph
from models.conditions import EntityTagCondition, require_match
from models.connection import (
    MAJORITY_READS,
    MAJORITY_WRITES,
    make_client,
    ping,
    prepare_database,
    require_transactions,
)
from models.errors import (
    IdAllocationFailed,
    InvalidOperation,
    StorageUnavailable,
    TaskAlreadyExists,
    TaskNotFound,
    TraversalTooLarge,
)
from models.events import (
    EXPIRED_CURSOR_CODES,
    SUBSCRIBER_FIELDS,
    CursorExpired,
    TaskEvent,
    event_from_change,
    full_document_mode,
    skipped_event,
    stream_request,
)
from models.graph import critical_path
from models.history import HistoryWriter, TaskChange, prepare_history, read_history
from models.jobs import (
    JOBS_INDEX,
    JobFilter,
    JobPosition,
    JobsPage,
    JobSummary,
    is_snapshot_too_old,
    jobs_page,
    jobs_pipeline,
    summaries,
    summaries_pipeline,
)
from models.layout import Database, MongoClient, TaskDoc, readable_task, readable_tasks
from models.lifecycle import Lifecycle
from models.limits import Limits
from models.locks import JobQueues, link_lock_id
from models.metrics import LINK_QUEUE_WAIT, MONGODB_FAILURES
from models.task import (
    COUNTER_FOLLOWS_IDS_UP_TO,
    DEFAULT_TYPE,
    SERVER_ID_MAX,
    TaskCounter,
    TaskCreate,
    TaskPatch,
    TaskRecord,
    now_utc,
)

log = logging.getLogger(__name__)


DEFAULT_DONE_STATUSES = ("DONE", "COMPLETED", "SUCCEEDED", "SUCCESS", "FINISHED", "SKIPPED")
"""Statuses that mean a task finished and blocks nothing (TRACKING_DONE_STATUSES), compared case-sensitively."""

TASK_COUNTER = "tasks"

_SERVER_ASSIGNED_ID_RETRIES = 3
_LIST_BATCH_SIZE = 100_000  # lists come back in as few round trips as 16 MiB batches allow
_WATCH_POLL_MS = 1000  # how long one getMore waits for a change before the stream reports where it is
_WATCH_RETRY_S = 0.5
_DEADLINE_GRACE_S = 0.5
"""The driver's own deadline (pymongo.timeout) ends almost every late operation; asyncio's, a little later,
ends what the driver does not watch (waiting for the link queue) and anything the driver overran."""
_DOCUMENT_TOO_LARGE = 10334  # BSONObjectTooLarge
_GRAPH_LOOKUP_OUT_OF_MEMORY = 40099  # $graphLookup holds more than its limit (100 MB) of documents
_WALK_DEPTH = "_walk_depth"  # set by $graphLookup on each task it found, removed before the tasks leave
_TRANSACTION_TOO_LARGE_CODES = frozenset({257, 334})  # TransactionTooLarge, TransactionTooLargeForCache
_REFUSED_UPDATE_CODES = frozenset({2, 14})  # BadValue, TypeMismatch: e.g. $addToSet on a stored non-array
_DOCUMENT_TOO_LARGE_MESSAGE = "a task is larger than MongoDB's 16 MiB document limit: store less in its fields"
_P = ParamSpec("_P")
_T = TypeVar("_T")
_UNAVAILABLE_ERRORS = (ServerSelectionTimeoutError, ConnectionFailure, ExecutionTimeout, WTimeoutError)


def _is_unavailable(error: PyMongoError) -> bool:
    return isinstance(error, _UNAVAILABLE_ERRORS) or error.timeout


def _bounded(
    method: Callable[Concatenate[GraphStore, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[GraphStore, _P], Coroutine[Any, Any, _T]]:
    """Every store operation finishes within the store's deadline (TRACKING_MONGODB_TIMEOUT_MS), waits and
    transaction retries included, and the driver's errors become the typed errors the front ends map. The
    details of an outage (hosts, topology) go to the log, never to the caller."""

    async def wrapper(self: GraphStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            async with asyncio.timeout(self.timeout_s + _DEADLINE_GRACE_S):
                with pymongo.timeout(self.timeout_s):
                    return await method(self, *args, **kwargs)
        except TimeoutError as error:
            raise self.unavailable(f"no answer within {self.timeout_s:g}s", error) from None
        except DocumentTooLarge:
            raise InvalidOperation(_DOCUMENT_TOO_LARGE_MESSAGE) from None
        except OperationFailure as error:
            if error.code == _DOCUMENT_TOO_LARGE:
                raise InvalidOperation(_DOCUMENT_TOO_LARGE_MESSAGE) from None
            if error.code in _TRANSACTION_TOO_LARGE_CODES:
                raise InvalidOperation(
                    "the change is too large for one MongoDB transaction: send it in smaller requests"
                ) from None
            if error.code in _REFUSED_UPDATE_CODES:
                message = (error.details or {}).get("errmsg", "")
                raise InvalidOperation(f"MongoDB refused the change: {message}") from None
            if _is_unavailable(error):
                raise self.unavailable("operation failed", error) from None
            raise
        except PyMongoError as error:
            if _is_unavailable(error):
                raise self.unavailable("operation failed", error) from None
            raise

    functools.update_wrapper(wrapper, method)  # a statement: mypy keeps wrapper's own, precise signature
    return wrapper


def _is_duplicate_key(error: OperationFailure) -> bool:
    if isinstance(error, DuplicateKeyError) or error.code == 11000:
        return True
    if isinstance(error, BulkWriteError):
        return any(item.get("code") == 11000 for item in error.details.get("writeErrors", []))
    return False


def task_filter(
    statuses: Collection[str] | None = None, task_type: str | None = None, statuses_not: Collection[str] | None = None
) -> dict[str, Any]:
    """The MongoDB filter for `status` (any of), `statusNot` (none of) and `type` (exact; a missing type counts
    as "task")."""
    query: dict[str, Any] = {}
    status: dict[str, Any] = {}
    if statuses:
        status["$in"] = list(statuses)
    if statuses_not:
        status["$nin"] = list(statuses_not)
    if status:
        query["status"] = status
    if task_type is not None:
        query["type"] = {"$in": [task_type, None]} if task_type == DEFAULT_TYPE else task_type
    return query


def task_matches(
    doc: TaskDoc,
    statuses: Collection[str] | None = None,
    task_type: str | None = None,
    statuses_not: Collection[str] | None = None,
) -> bool:
    """`task_filter` for a task already in memory: the same rule, applied without a query."""
    if statuses and doc.get("status") not in statuses:
        return False
    if statuses_not and doc.get("status") in statuses_not:
        return False
    return task_type is None or doc.get("type", DEFAULT_TYPE) == task_type


@dataclass
class _PlannedTask:
    spec: TaskCreate
    parent: int | None  # index into the plan
    children: list[int] = field(default_factory=list)


def _plan_creation(tasks: Sequence[TaskCreate]) -> list[_PlannedTask]:
    """Flatten nested `nexts` depth-first: each task followed by its sub-graph, in request order."""
    plan: list[_PlannedTask] = []
    stack: list[tuple[TaskCreate, int | None]] = [(spec, None) for spec in reversed(tasks)]
    while stack:
        spec, parent = stack.pop()
        index = len(plan)
        plan.append(_PlannedTask(spec, parent))
        if parent is not None:
            plan[parent].children.append(index)
        stack.extend((child, index) for child in reversed(spec.nexts.tasks if spec.nexts else ()))
    return plan


def _duplicate_ids(ids: Iterable[int]) -> list[int]:
    seen: set[int] = set()
    repeated: set[int] = set()
    for task_id in ids:
        (repeated if task_id in seen else seen).add(task_id)
    return sorted(repeated)


class GraphStore:
    """Tasks and their links in MongoDB. Multi-document changes run in one majority transaction."""

    def __init__(
        self,
        client: MongoClient,
        database: Database,
        *,
        limits: Limits | None = None,
        timeout_s: float = 10,
        done_statuses: Iterable[str] = DEFAULT_DONE_STATUSES,
    ) -> None:
        """A store over `database`, with collections of its own: several stores (tests standing in for several
        gateway processes) can share a process without sharing any state."""
        self._client = client
        self._database = database
        self._tasks = database.get_collection(TaskRecord.Settings.name)
        self._counters = database.get_collection(TaskCounter.Settings.name)
        self.limits = limits or Limits()
        self.timeout_s = timeout_s
        self.done_statuses = frozenset(done_statuses)
        self.full_document = full_document_mode(keeps_images=False)
        self._link_queues = JobQueues()

    @classmethod
    async def open(
        cls,
        uri: str,
        db_name: str,
        *,
        limits: Limits | None = None,
        timeout_ms: int = 10_000,
        validation_action: str = "error",
        done_statuses: Iterable[str] = DEFAULT_DONE_STATUSES,
        history_days: int = 30,
    ) -> GraphStore:
        """Connect, refuse servers without transactions, install the validators and create the indexes."""
        client = make_client(uri, timeout_ms=timeout_ms)
        try:
            await require_transactions(client)
            database, keeps_images = await prepare_database(client, db_name, validation_action)
            await prepare_history(database, history_days)
            store = cls(client, database, limits=limits, timeout_s=timeout_ms / 1000, done_statuses=done_statuses)
            store.full_document = full_document_mode(keeps_images)
            await store.sync_id_counter()
        except BaseException:
            await client.close()
            raise
        return store

    async def close(self) -> None:
        await self._client.close()

    async def is_ready(self, timeout_s: float = 1.0) -> bool:
        """Whether MongoDB answers within `timeout_s` (for /readyz, whose probes give up after a few seconds)."""
        return await ping(self._client, timeout_s)

    async def check(self, *, repair: bool = False) -> CheckReport:
        """Scan the stored graph for what other tools broke and, with `repair`, fix what is safe (models.check).
        A maintenance scan of the whole collection: not bounded by the per-request deadline."""
        return await check_graph(self._tasks, self._in_transaction if repair else None)

    def lifecycle(self) -> Lifecycle:
        """Archive, restore and purge of whole jobs (models.lifecycle): maintenance work, not bounded by the
        per-request deadline."""
        return Lifecycle(self._database, self._in_transaction, TASK_COUNTER)

    def history_writer(self, owner: str) -> HistoryWriter:
        """This process's candidate for writing the task history (models.history); run it as a task."""
        return HistoryWriter(self._database, owner, full_document=self.full_document)

    @_bounded
    async def task_history(self, task_id: int) -> list[TaskChange]:
        """Every recorded change of the task, oldest first, deleted tasks included (within the retention)."""
        return await read_history(self._database, task_id)

    def unavailable(self, what: str, error: BaseException) -> StorageUnavailable:
        """The caller learns that MongoDB is unavailable; the log learns why (hosts, topology, driver error)."""
        timed_out = isinstance(error, TimeoutError | ExecutionTimeout) or getattr(error, "timeout", False)
        MONGODB_FAILURES.labels(kind="timeout" if timed_out else "unavailable").inc()
        log.warning("MongoDB unavailable: %s: %s", what, error)
        return StorageUnavailable("MongoDB unavailable: try again later")

    # ---- plumbing -------------------------------------------------------------------------------------------

    async def _in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[_T]]) -> _T:
        """Run `work` in a transaction; PyMongo retries the whole callback on transient errors."""
        async with self._client.start_session() as session:
            return await session.with_transaction(
                work,
                read_concern=MAJORITY_READS,
                write_concern=MAJORITY_WRITES,
                read_preference=ReadPreference.PRIMARY,
            )

    async def _find_sorted(self, query: dict[str, Any], session: AsyncClientSession | None = None) -> list[TaskDoc]:
        cursor = self._tasks.find(query, session=session, batch_size=_LIST_BATCH_SIZE)
        return readable_tasks(await cursor.sort("_id", ASCENDING).to_list(None))

    async def _require_ids(self, ids: Collection[int], session: AsyncClientSession | None = None) -> dict[int, TaskDoc]:
        """Link arrays and jobs of the given tasks, raising TaskNotFound naming every id that does not exist."""
        projection = {"nexts": 1, "previous": 1, "job-id": 1}
        cursor = self._tasks.find({"_id": {"$in": list(ids)}}, projection, session=session)
        found = {doc["_id"]: doc for doc in readable_tasks(await cursor.to_list(None))}
        missing = set(ids) - found.keys()
        if missing:
            raise TaskNotFound(missing)
        return found

    # ---- id allocation --------------------------------------------------------------------------------------

    async def _raise_counter_past(self, ids: Iterable[float]) -> None:
        """Move the counter past those of `ids` that lie where server ids are handed out (see
        COUNTER_FOLLOWS_IDS_UP_TO); ids above sit at the top of the id space and leave it alone."""
        followed = [task_id for task_id in ids if task_id <= COUNTER_FOLLOWS_IDS_UP_TO]
        if followed:
            highest = Int64(math.ceil(max(followed)))
            await self._counters.update_one({"_id": TASK_COUNTER}, {"$max": {"seq": highest}}, upsert=True)

    async def _allocate_ids(self, count: int) -> list[int]:
        """Reserve `count` fresh ascending ids. Outside any transaction: a rolled-back create leaves a gap."""
        if count == 0:
            return []
        counter = await self._counters.find_one_and_update(
            {"_id": TASK_COUNTER},
            {"$inc": {"seq": Int64(count)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None  # an upsert returning the document after the change always has one
        last = int(counter["seq"])
        if last > SERVER_ID_MAX:
            raise IdAllocationFailed(f"server-assigned task ids are used up (they stop at {SERVER_ID_MAX})")
        return list(range(last - count + 1, last + 1))

    @_bounded
    async def sync_id_counter(self) -> None:
        """Move the id counter past every stored id in its range, e.g. after ops tooling inserted tasks directly.

        A numeric range only matches numbers, so ids of other types (strings, ObjectIds) that other tools
        stored cannot hide the highest number; a float id counts too, as the unique index compares numerically.
        """
        in_range = {"_id": {"$gte": 1, "$lte": Int64(COUNTER_FOLLOWS_IDS_UP_TO)}}
        highest = await self._tasks.find_one(in_range, {"_id": 1}, sort=[("_id", -1)])
        if highest is not None:
            await self._raise_counter_past([highest["_id"]])

    async def _existing_ids(self, ids: Collection[int]) -> set[int]:
        return {doc["_id"] async for doc in self._tasks.find({"_id": {"$in": list(ids)}}, {"_id": 1})}

    # ---- create ---------------------------------------------------------------------------------------------

    @_bounded
    async def create_tasks(self, tasks: Sequence[TaskCreate]) -> list[TaskDoc]:
        """Create tasks and their nested `nexts` sub-graphs, all or nothing; returns them in request order."""
        plan = _plan_creation(tasks)
        if not plan:
            raise InvalidOperation("tasks: at least one task is required")
        self.limits.refuse_task_count(len(plan))
        client_ids = [item.spec.id for item in plan if item.spec.id is not None]
        repeated = _duplicate_ids(client_ids)
        if repeated:
            raise InvalidOperation(f"task id {', '.join(map(str, repeated))} appears more than once in the request")
        if client_ids:
            await self._raise_counter_past(client_ids)
            existing = await self._existing_ids(client_ids)
            if existing:
                raise TaskAlreadyExists(existing)
        for _ in range(_SERVER_ASSIGNED_ID_RETRIES):
            server_ids = iter(await self._allocate_ids(len(plan) - len(client_ids)))
            ids = [item.spec.id if item.spec.id is not None else next(server_ids) for item in plan]
            docs = _new_documents(plan, ids)

            async def insert(session: AsyncClientSession, docs: list[TaskDoc] = docs) -> None:
                await self._tasks.insert_many(docs, ordered=True, session=session)

            try:
                await self._in_transaction(insert)
                return docs
            except OperationFailure as error:
                if not _is_duplicate_key(error):
                    raise
                taken = await self._existing_ids(ids)
                if taken & set(client_ids):
                    raise TaskAlreadyExists(taken & set(client_ids)) from None
                await self.sync_id_counter()  # a direct write took a server-assigned id: skip past it
        raise IdAllocationFailed(
            f"no free task ids after {_SERVER_ASSIGNED_ID_RETRIES} tries: something keeps writing ids just past "
            "the id counter; try again, or give ids in the request"
        )

    # ---- read -----------------------------------------------------------------------------------------------

    @_bounded
    async def get_task(self, task_id: int) -> TaskDoc:
        doc = await self._tasks.find_one({"_id": task_id})
        readable = readable_task(doc) if doc is not None else None
        if readable is None:
            raise TaskNotFound([task_id])
        return readable

    @_bounded
    async def get_tasks(self, ids: Collection[int]) -> dict[int, TaskDoc]:
        """The tasks that exist among `ids`, by id (unknown ids are simply absent)."""
        if not ids:
            return {}
        # The whole answer in the first batch, one more than can match so that the server closes the cursor:
        # one round trip, where the default (101 documents, then getMore) costs two or more.
        cursor = self._tasks.find({"_id": {"$in": list(ids)}}, batch_size=len(ids) + 1)
        return {doc["_id"]: doc for doc in readable_tasks(await cursor.to_list(None))}

    @_bounded
    async def list_nexts(
        self, task_id: int, statuses: Collection[str] | None = None, task_type: str | None = None
    ) -> list[TaskDoc]:
        return await self._list_linked(task_id, "nexts", statuses, task_type)

    @_bounded
    async def list_previous(
        self, task_id: int, statuses: Collection[str] | None = None, task_type: str | None = None
    ) -> list[TaskDoc]:
        return await self._list_linked(task_id, "previous", statuses, task_type)

    async def _list_linked(
        self, task_id: int, direction: str, statuses: Collection[str] | None, task_type: str | None
    ) -> list[TaskDoc]:
        doc = await self._tasks.find_one({"_id": task_id}, {direction: 1})
        readable = readable_task(doc) if doc is not None else None
        if readable is None:
            raise TaskNotFound([task_id])
        linked = readable.get(direction) or []
        if not linked:
            return []
        return await self._find_sorted({"_id": {"$in": linked}, **task_filter(statuses, task_type)})

    @_bounded
    async def list_job_tasks(self, job_id: str, root: bool | None = None) -> list[TaskDoc]:
        """A job's tasks by ascending id, those whose `root` equals `root` when it is given (REST's listing,
        which the legacy API defines without a bound)."""
        query: dict[str, Any] = {"job-id": job_id}
        if root is not None:
            query["root"] = root
        return await self._find_sorted(query)

    async def watch_task_events(
        self, job_id: str | None = None, after: str | None = None, *, resume_within_s: float = 30.0
    ) -> AsyncIterator[TaskEvent]:
        """Every change to the tasks (of one job, if given) from a MongoDB change stream, after the event whose
        cursor is `after` when given (MongoDB replays the rest from its oplog), then live.

        A primary election or a MongoDB restart does not end it: the stream is reopened after the last event
        (or the last point the server reported, when there was none), for up to `resume_within_s` seconds;
        then StorageUnavailable. A cursor MongoDB cannot resume after is CursorExpired."""
        token: ResumeToken | None = {"_data": after} if after is not None else None
        request = stream_request(self._tasks, job_id, SUBSCRIBER_FIELDS, self.full_document, _WATCH_POLL_MS)
        failing_since: float | None = None
        while True:
            try:
                async with contextlib.aclosing(read_changes(request, token)) as items:
                    async for item in items:
                        failing_since = None
                        token = item.token
                        event = _event_of(item)
                        if event is not None:
                            yield event
            except OperationFailure as error:
                if error.code in EXPIRED_CURSOR_CODES:
                    raise CursorExpired(
                        "cursor expired: MongoDB no longer holds the events after it (or it is no event cursor); "
                        "subscribe without `after` and reload what the view shows"
                    ) from None
                failure: PyMongoError = error
            except PyMongoError as error:
                failure = error
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > resume_within_s:
                raise self.unavailable(f"change stream not resumable within {resume_within_s:g}s", failure)
            log.info("change stream interrupted (%s); resuming after the last event", failure)
            await asyncio.sleep(_WATCH_RETRY_S)

    @_bounded
    async def walk(self, task: TaskDoc, direction: str, max_depth: int | None, bound: int) -> list[TaskDoc]:
        """Every task reachable from `task` over its `direction` links ("nexts": downstream, "previous":
        upstream), nearest level first and by id within a level, up to `max_depth` levels; TraversalTooLarge
        past `bound` tasks. Safe on cycles other tools wrote.

        One `$graphLookup` aggregation; when the tasks it finds outgrow the memory MongoDB gives it (100 MB by
        default), one query per level instead."""
        if max_depth == 0 or not task.get(direction):
            return []
        try:
            found = await self._walk_in_one_aggregation(task["_id"], direction, max_depth, bound)
        except OperationFailure as error:
            if error.code != _GRAPH_LOOKUP_OUT_OF_MEMORY:
                raise
            log.info("walk from task %s is too large for $graphLookup; walking level by level", task["_id"])
            found = await self._walk_by_levels(task, direction, max_depth, bound)
        if len(found) > bound:
            raise TraversalTooLarge(
                f"traversal bound exceeded: more than {bound} tasks (TRACKING_GRAPHQL_MAX_TRAVERSAL)"
            )
        return found

    async def _walk_in_one_aggregation(
        self, task_id: int, direction: str, max_depth: int | None, bound: int
    ) -> list[TaskDoc]:
        depth_limit = {"maxDepth": max_depth - 1} if max_depth is not None else {}
        pipeline: list[dict[str, Any]] = [
            {"$match": {"_id": task_id}},
            {
                "$graphLookup": {
                    "from": self._tasks.name,
                    "startWith": f"${direction}",
                    "connectFromField": direction,
                    "connectToField": "_id",
                    "as": "reached",
                    "depthField": _WALK_DEPTH,
                    **depth_limit,
                }
            },
            # Right after $graphLookup, MongoDB folds the $unwind into it: no single 16 MB document of results.
            {"$unwind": "$reached"},
            {"$replaceRoot": {"newRoot": "$reached"}},
            {"$match": {"_id": {"$ne": task_id}}},  # on a cycle, the walk comes back to where it started
            {"$sort": {_WALK_DEPTH: 1, "_id": 1}},
            {"$limit": bound + 1},
        ]
        docs = await (await self._tasks.aggregate(pipeline, batchSize=bound + 1)).to_list(None)
        for doc in docs:
            del doc[_WALK_DEPTH]
        return readable_tasks(docs)

    async def _walk_by_levels(self, task: TaskDoc, direction: str, max_depth: int | None, bound: int) -> list[TaskDoc]:
        seen = {task["_id"]}
        frontier = _next_level([task], direction, seen)
        found: list[TaskDoc] = []
        depth = 0
        while frontier and (max_depth is None or depth < max_depth) and len(found) <= bound:
            depth += 1
            level = await self._find_sorted({"_id": {"$in": frontier}})
            found.extend(level)
            frontier = _next_level(level, direction, seen)
        return found

    # ---- jobs -----------------------------------------------------------------------------------------------

    @_bounded
    async def list_jobs(
        self,
        first: int,
        after: JobPosition | None = None,
        job_filter: JobFilter | None = None,
        snapshot: tuple[int, int] | None = None,
    ) -> JobsPage:
        """A page of jobs, newest activity first, read at `snapshot` (the cluster time of the first page) when
        MongoDB still holds it, else at a new one (see models.jobs)."""
        job_filter = job_filter or JobFilter()
        try:
            return await self._jobs_page(first, after, job_filter, snapshot)
        except OperationFailure as error:
            if snapshot is None or not is_snapshot_too_old(error.code):
                raise
            log.info("job listing snapshot %s is older than MongoDB keeps; going on over current data", snapshot)
            return await self._jobs_page(first, after, job_filter, None)

    async def _jobs_page(
        self, first: int, after: JobPosition | None, job_filter: JobFilter, snapshot: tuple[int, int] | None
    ) -> JobsPage:
        read_concern: dict[str, Any] = {"level": "snapshot"}
        if snapshot is not None:
            read_concern["atClusterTime"] = Timestamp(*snapshot)
        job_ids = None
        if job_filter.statuses:
            distinct = {
                "distinct": self._tasks.name,
                "key": "job-id",
                "query": {"status": {"$in": job_filter.statuses}},
            }
            reply = await self._command({**distinct, "readConcern": read_concern})
            job_ids = [job_id for job_id in reply["values"] if isinstance(job_id, str)]
            read_concern = {"level": "snapshot", "atClusterTime": reply["atClusterTime"]}
        pipeline = jobs_pipeline(first, after, job_filter, job_ids)
        command = {
            "aggregate": self._tasks.name,
            "pipeline": pipeline,
            "cursor": {},
            "readConcern": read_concern,
            "hint": JOBS_INDEX,  # the plan that reads one key per job (see models.jobs)
        }
        cursor = (await self._command(command))["cursor"]
        at = cursor.get("atClusterTime") or read_concern.get("atClusterTime")
        return jobs_page(cursor["firstBatch"], first, (at.time, at.inc) if at is not None else None)

    async def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        """A database command whose reply is decoded like every read (`Database.command` defaults to PyMongo's
        plain codec options, under which a stored date beyond year 9999 raises)."""
        return await self._database.command(command, codec_options=self._database.codec_options)

    @_bounded
    async def job_summaries(self, job_ids: Collection[str]) -> dict[str, JobSummary]:
        """Counts, status counts and times of each of these jobs (those that have tasks), in one aggregation."""
        rows = await (await self._tasks.aggregate(summaries_pipeline(job_ids))).to_list(None)
        return summaries(rows, self.done_statuses)

    @_bounded
    async def job_exists(self, job_id: str) -> bool:
        return await self._tasks.find_one({"job-id": job_id}, {"_id": 1}) is not None

    @_bounded
    async def job_tasks(self, job_id: str, bound: int) -> list[TaskDoc]:
        """Every task of the job by ascending id; TraversalTooLarge (counted on the index first) over `bound`."""
        await self._refuse_job_over(job_id, bound, "list every task of it")
        return await self._find_sorted({"job-id": job_id})

    async def _refuse_job_over(self, job_id: str, bound: int, what: str) -> None:
        count = await self._tasks.count_documents({"job-id": job_id})
        if count > bound:
            raise TraversalTooLarge(
                f"traversal bound exceeded: job {job_id} has {count} tasks, more than {bound} "
                f"(TRACKING_GRAPHQL_MAX_TRAVERSAL), too many to {what}: page through them with Job.taskPage"
            )

    @_bounded
    async def task_page(
        self,
        job_id: str,
        first: int,
        after_id: int | None = None,
        statuses: Collection[str] | None = None,
        statuses_not: Collection[str] | None = None,
        task_type: str | None = None,
    ) -> tuple[list[TaskDoc], bool]:
        """Up to `first` tasks of the job after `after_id`, by id, and whether more follow. Ids never change,
        so paging by id yields each task once however the job changes meanwhile."""
        query: dict[str, Any] = {"job-id": job_id, **task_filter(statuses, task_type, statuses_not)}
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self._tasks.find(query, sort=[("_id", ASCENDING)], limit=first + 1, batch_size=first + 1)
        docs = readable_tasks(await cursor.to_list(None))
        return docs[:first], len(docs) > first

    @_bounded
    async def critical_path(self, job_id: str, bound: int) -> list[TaskDoc]:
        """The job's longest chain of linked tasks by duration (models.graph.critical_path)."""
        await self._refuse_job_over(job_id, bound, "find its critical path")
        projection = {"nexts": 1, "previous": 1, "start-time": 1, "finish-time": 1}
        cursor = self._tasks.find({"job-id": job_id}, projection, batch_size=_LIST_BATCH_SIZE)
        timing = {doc["_id"]: doc for doc in readable_tasks(await cursor.to_list(None))}
        path = critical_path(timing, now_utc())
        found = await self.get_tasks(path)
        return [found[task_id] for task_id in path if task_id in found]

    # ---- update ---------------------------------------------------------------------------------------------

    @_bounded
    async def update_task(self, task_id: int, patch: TaskPatch, if_match: EntityTagCondition | None = None) -> TaskDoc:
        """Merge `patch` into the task: present fields replace, null clears, absent fields stay. With `if_match`,
        only while the task's ETag satisfies it (PreconditionFailed otherwise; models.conditions)."""
        if patch.id is not None and patch.id != task_id:
            raise InvalidOperation(f"id: body id {patch.id} does not match path id {task_id}")
        present = patch.model_fields_set - {"id", "creation_timestamp", "update_timestamp"}
        values = patch.model_dump(by_alias=True, include=present)
        to_set = {name: value for name, value in values.items() if value is not None}
        to_unset = {name: "" for name, value in values.items() if value is None}
        if "type" in to_unset:  # a cleared type falls back to the default, as on create
            del to_unset["type"]
            to_set["type"] = DEFAULT_TYPE
        to_set["update-timestamp"] = now_utc()
        update: dict[str, Any] = {"$set": to_set}
        if to_unset:
            update["$unset"] = to_unset
        if if_match is not None:  # conditional writes: models.conditions
            doc = await self._in_transaction(
                lambda session: self._update_if_match(task_id, update, "job-id" in values, if_match, session)
            )
        elif "job-id" in values:
            doc = await self._in_transaction(lambda session: self._move_to_job(task_id, update, session))
        else:
            doc = await self._tasks.find_one_and_update({"_id": task_id}, update, return_document=ReturnDocument.AFTER)
        readable = readable_task(doc) if doc is not None else None
        if readable is None:
            raise TaskNotFound([task_id])
        return readable

    async def _update_if_match(
        self,
        task_id: int,
        update: dict[str, Any],
        moves: bool,
        if_match: EntityTagCondition,
        session: AsyncClientSession,
    ) -> TaskDoc | None:
        await require_match(self._tasks, task_id, if_match, session)
        if moves:
            return await self._move_to_job(task_id, update, session)
        return await self._tasks.find_one_and_update(
            {"_id": task_id}, update, return_document=ReturnDocument.AFTER, session=session
        )

    async def _move_to_job(self, task_id: int, update: dict[str, Any], session: AsyncClientSession) -> TaskDoc | None:
        """An update that may change the task's job also bumps the link locks of its old and new job."""
        before = await self._tasks.find_one({"_id": task_id}, {"job-id": 1}, session=session)
        readable = readable_task(before) if before is not None else None
        if readable is None:
            return None
        new_job = update["$set"].get("job-id")  # absent when the patch clears it
        await self._bump_link_locks({readable.get("job-id"), new_job}, session)
        return await self._tasks.find_one_and_update(
            {"_id": task_id}, update, return_document=ReturnDocument.AFTER, session=session
        )

    # ---- links ----------------------------------------------------------------------------------------------

    @_bounded
    async def add_nexts(
        self, task_id: int, next_ids: Collection[int], if_match: EntityTagCondition | None = None
    ) -> list[TaskDoc]:
        """Link task_id -> each next id; returns all next tasks of task_id after the change."""
        return await self._add_links(task_id, [(task_id, other) for other in next_ids], "nexts", if_match)

    @_bounded
    async def add_previous(
        self, task_id: int, previous_ids: Collection[int], if_match: EntityTagCondition | None = None
    ) -> list[TaskDoc]:
        """Link each previous id -> task_id; returns all previous tasks of task_id after the change."""
        return await self._add_links(task_id, [(other, task_id) for other in previous_ids], "previous", if_match)

    async def _add_links(
        self, anchor: int, pairs: list[tuple[int, int]], listing: str, if_match: EntityTagCondition | None = None
    ) -> list[TaskDoc]:
        """Add the links in one transaction that refuses cycles and bumps the lock documents of every job it
        read (models.locks explains why that keeps concurrent additions from closing a cycle)."""
        _refuse_self_links(pairs)
        involved = {task_id for pair in pairs for task_id in pair}

        async def work(session: AsyncClientSession) -> list[TaskDoc]:
            docs = await self._require_ids(involved, session)
            if if_match is not None:
                await require_match(self._tasks, anchor, if_match, session)
            new_pairs = [(a, b) for a, b in dict.fromkeys(pairs) if b not in (docs[a].get("nexts") or [])]
            if new_pairs:
                jobs_read = await self._refuse_cycles(new_pairs, docs, session)
                await self._bump_link_locks(jobs_read | {doc.get("job-id") for doc in docs.values()}, session)
                await self._tasks.bulk_write(_link_updates(new_pairs, "$addToSet"), ordered=True, session=session)
            # This transaction wrote the anchor's links last (a concurrent change of them would conflict).
            linked = {*(docs[anchor].get(listing) or ()), *(b if a == anchor else a for a, b in new_pairs)}
            return await self._find_sorted({"_id": {"$in": list(linked)}}, session)

        # The endpoints' jobs, read before the transaction, only pick this process's queues: the transaction
        # reads them again and bumps what it read.
        endpoint_jobs = {doc.get("job-id") for doc in (await self._require_ids(involved)).values()}
        waiting = time.monotonic()
        async with self._link_queues.holding(endpoint_jobs):
            LINK_QUEUE_WAIT.observe(time.monotonic() - waiting)
            return await self._in_transaction(work)

    async def _bump_link_locks(self, job_ids: Iterable[str | None], session: AsyncClientSession) -> None:
        bumps = [
            UpdateOne({"_id": lock_id}, {"$inc": {"seq": Int64(1)}}, upsert=True)
            for lock_id in sorted({link_lock_id(job_id) for job_id in job_ids})
        ]
        await self._counters.bulk_write(bumps, ordered=True, session=session)

    async def _refuse_cycles(
        self, new_pairs: list[tuple[int, int]], endpoints: Mapping[int, TaskDoc], session: AsyncClientSession
    ) -> set[str | None]:
        """Refuse links a->b where a is already reachable from b (the link would close a cycle); returns the
        jobs of every task the searches read.

        The new pairs all share their source or their target, so no cycle can run through two of them:
        checking each against the stored graph is enough.
        """
        jobs_read: set[str | None] = set()
        for source, target in new_pairs:
            if await self._reachable(endpoints[target], endpoints[source], jobs_read, session):
                raise InvalidOperation(f"linking task {source} to next task {target} would close a cycle")
        return jobs_read

    async def _reachable(
        self, start: TaskDoc, goal: TaskDoc, jobs_read: set[str | None], session: AsyncClientSession
    ) -> bool:
        """Whether `goal` is downstream of `start`, searching from both ends and growing the smaller side; the
        endpoints' own links are known already. When it is not, one side has read every task it can reach:
        models.locks relies on that."""
        seen_forward, seen_backward = {start["_id"]}, {goal["_id"]}
        forward = set(_next_level([start], "nexts", seen_forward))
        backward = set(_next_level([goal], "previous", seen_backward))
        if seen_forward & seen_backward:
            return True
        while forward and backward:
            if len(forward) <= len(backward):
                forward = await self._step(forward, "nexts", seen_forward, jobs_read, session)
                if forward & seen_backward:
                    return True
            else:
                backward = await self._step(backward, "previous", seen_backward, jobs_read, session)
                if backward & seen_forward:
                    return True
        return False

    async def _step(
        self, frontier: set[int], direction: str, seen: set[int], jobs: set[str | None], session: AsyncClientSession
    ) -> set[int]:
        """One breadth-first level: the not-yet-seen neighbours of `frontier`; marks them seen and notes the
        jobs of the tasks read."""
        cursor = self._tasks.find({"_id": {"$in": list(frontier)}}, {direction: 1, "job-id": 1}, session=session)
        docs = readable_tasks(await cursor.to_list(None))
        jobs.update(doc.get("job-id") for doc in docs)
        return set(_next_level(docs, direction, seen))

    @_bounded
    async def remove_nexts(
        self, task_id: int, next_ids: Collection[int], if_match: EntityTagCondition | None = None
    ) -> None:
        await self._remove_links([(task_id, other) for other in next_ids], task_id, if_match)

    @_bounded
    async def remove_previous(
        self, task_id: int, previous_ids: Collection[int], if_match: EntityTagCondition | None = None
    ) -> None:
        await self._remove_links([(other, task_id) for other in previous_ids], task_id, if_match)

    async def _remove_links(
        self, pairs: list[tuple[int, int]], anchor: int, if_match: EntityTagCondition | None = None
    ) -> None:
        async def work(session: AsyncClientSession) -> None:
            await self._require_ids({task_id for pair in pairs for task_id in pair}, session)
            if if_match is not None:
                await require_match(self._tasks, anchor, if_match, session)
            await self._tasks.bulk_write(_link_updates(list(dict.fromkeys(pairs)), "$pull"), session=session)

        await self._in_transaction(work)

    # ---- delete ---------------------------------------------------------------------------------------------

    @_bounded
    async def delete_task(self, task_id: int, if_match: EntityTagCondition | None = None) -> None:
        """Delete the task and every link to or from it, found through the indexes rather than its own arrays
        so that links written inconsistently by other tools are cleaned up too. With `if_match`, only while the
        task's ETag satisfies it."""

        async def work(session: AsyncClientSession) -> None:
            await self._require_ids({task_id}, session)
            if if_match is not None:
                await require_match(self._tasks, task_id, if_match, session)
            touched = {"$set": {"update-timestamp": now_utc()}}
            await self._tasks.update_many({"nexts": task_id}, {"$pull": {"nexts": task_id}, **touched}, session=session)
            await self._tasks.update_many(
                {"previous": task_id}, {"$pull": {"previous": task_id}, **touched}, session=session
            )
            await self._tasks.delete_one({"_id": task_id}, session=session)

        await self._in_transaction(work)


def _event_of(item: StreamItem) -> TaskEvent | None:
    """A subscriber's event for a stream item: None for a poll without a change or a change of no task."""
    if isinstance(item, Idle):
        return None
    if isinstance(item, Change):
        return event_from_change(item.document)
    return skipped_event(item)


def _next_level(docs: Iterable[TaskDoc], direction: str, seen: set[int]) -> list[int]:
    """One breadth-first level: the ids the tasks' `direction` links lead to that are not seen yet, in order,
    once each; marks them seen."""
    fresh = [i for i in dict.fromkeys(i for doc in docs for i in doc.get(direction) or ()) if i not in seen]
    seen.update(fresh)
    return fresh


def _refuse_self_links(pairs: Iterable[tuple[int, int]]) -> None:
    for source, target in pairs:
        if source == target:
            raise InvalidOperation(f"task {source} cannot be linked to itself")


def _link_updates(pairs: list[tuple[int, int]], operator: str) -> list[UpdateOne]:
    """One update per task touched: `$addToSet` ({"$each": ids}) or `$pull` ({"$in": ids}) on both sides."""
    nexts: dict[int, list[Int64]] = {}
    previous: dict[int, list[Int64]] = {}
    for source, target in pairs:
        nexts.setdefault(source, []).append(Int64(target))
        previous.setdefault(target, []).append(Int64(source))
    adding = operator == "$addToSet"
    wrap = "$each" if adding else "$in"
    stamp = {"$set": {"update-timestamp": now_utc()}}

    def update(task_id: int, array: str, ids: list[Int64]) -> UpdateOne:
        # A removal touches (and re-stamps) only tasks that really hold one of the links.
        match = {"_id": task_id} if adding else {"_id": task_id, array: {"$in": ids}}
        return UpdateOne(match, {operator: {array: {wrap: ids}}, **stamp})

    return [update(a, "nexts", ids) for a, ids in nexts.items()] + [
        update(b, "previous", ids) for b, ids in previous.items()
    ]


def _new_documents(plan: list[_PlannedTask], ids: list[int]) -> list[TaskDoc]:
    """The stored documents for a creation plan: ids as int64, defaults for `type`, `root` and `job-id`."""
    now = now_utc()
    docs: list[TaskDoc] = []
    for index, item in enumerate(plan):
        fields = item.spec.model_dump(by_alias=True, exclude_none=True, exclude={"id", "nexts"})
        parent_doc = docs[item.parent] if item.parent is not None else None
        doc: TaskDoc = {"_id": Int64(ids[index])}
        if "status" in fields:
            doc["status"] = fields.pop("status")
        doc["creation-timestamp"] = now
        doc["update-timestamp"] = now
        if "job-id" not in fields and parent_doc is not None and "job-id" in parent_doc:
            doc["job-id"] = parent_doc["job-id"]
        doc.update(fields)
        doc.setdefault("root", parent_doc is None)
        doc.setdefault("type", DEFAULT_TYPE)
        doc["nexts"] = [Int64(ids[child]) for child in item.children]
        doc["previous"] = [Int64(ids[item.parent])] if item.parent is not None else []
        docs.append(doc)
    return docs
