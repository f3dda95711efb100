"""The graph store: every read and write of tasks and their links. REST and GraphQL both call this.

Documents come back as the raw dicts MongoDB stores (CONTRACT §3 layout, `_id` = task id) rather than Beanie
models: re-validating thousands of documents MongoDB just returned is the largest cost on read paths, and the
stored layout is already the contract.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from bson.int64 import Int64
from pymongo import ASCENDING, AsyncMongoClient, ReadPreference, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from models.connection import (
    MAJORITY_READS,
    MAJORITY_WRITES,
    init_database,
    make_client,
    ping,
    require_transactions,
)
from models.errors import InvalidOperation, StorageUnavailable, TaskAlreadyExists, TaskNotFound
from models.task import DEFAULT_TYPE, Counter, Task, TaskCreate, TaskPatch, now_utc

TaskDoc = dict[str, Any]
"""A task as stored: `_id`, hyphenated fields, BSON dates as aware UTC datetimes, `nexts`/`previous`."""


class TaskEventKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class TaskEvent:
    kind: TaskEventKind
    task_id: int
    task: TaskDoc | None  # the task after the change; None once deleted


_EVENT_KINDS = {
    "insert": TaskEventKind.CREATED,
    "update": TaskEventKind.UPDATED,
    "replace": TaskEventKind.UPDATED,
    "delete": TaskEventKind.DELETED,
}

TASK_COUNTER = "tasks"
LINK_COUNTER = "task-links"
"""Bumped by every link-adding transaction: two concurrent additions that together would close a cycle
(a->b while b~>c, and c->a) touch no common task, so without one shared write MongoDB's snapshot isolation
would let both commit. The write conflict on this document serialises them and the loser re-checks."""

_SERVER_ASSIGNED_ID_RETRIES = 3
_LIST_BATCH_SIZE = 100_000  # lists come back in as few round trips as 16 MiB batches allow
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _translating_driver_errors(method: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
    """Turn "MongoDB is unreachable" driver errors into StorageUnavailable so front ends need no driver."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(*args, **kwargs)
        except (ServerSelectionTimeoutError, ConnectionFailure, ExecutionTimeout, WTimeoutError) as error:
            raise StorageUnavailable(f"MongoDB unavailable: {error}") from error

    return wrapper


def _is_duplicate_key(error: OperationFailure) -> bool:
    if isinstance(error, DuplicateKeyError) or error.code == 11000:
        return True
    if isinstance(error, BulkWriteError):
        return any(item.get("code") == 11000 for item in error.details.get("writeErrors", []))
    return False


def task_filter(statuses: Collection[str] | None = None, task_type: str | None = None) -> dict[str, Any]:
    """The MongoDB filter for `status` (any of) and `type` (exact; a missing type counts as "task")."""
    query: dict[str, Any] = {}
    if statuses:
        query["status"] = {"$in": list(statuses)}
    if task_type is not None:
        query["type"] = {"$in": [task_type, None]} if task_type == DEFAULT_TYPE else task_type
    return query


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

    def __init__(self, client: AsyncMongoClient) -> None:
        self._client = client
        self._tasks = Task.get_pymongo_collection()
        self._counters = Counter.get_pymongo_collection()
        # Link additions are serialised anyway (LINK_COUNTER); queueing them here first turns the write
        # conflicts, aborts and back-off between this process's own requests into a plain wait.
        self._link_lock = asyncio.Lock()

    @classmethod
    async def open(cls, uri: str, db_name: str) -> GraphStore:
        """Connect, refuse servers without transactions, bind Beanie and create the indexes."""
        client = make_client(uri)
        try:
            await require_transactions(client)
            await init_database(client, db_name)
            store = cls(client)
            await store.sync_id_counter()
        except BaseException:
            await client.close()
            raise
        return store

    async def close(self) -> None:
        await self._client.close()

    async def is_ready(self) -> bool:
        """Whether MongoDB answers right now (for /readyz)."""
        return await ping(self._client)

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
        return await cursor.sort("_id", ASCENDING).to_list(None)

    async def _require_ids(self, ids: Collection[int], session: AsyncClientSession | None = None) -> dict[int, TaskDoc]:
        """Link arrays of the given tasks, raising TaskNotFound naming every id that does not exist."""
        found = {
            doc["_id"]: doc
            async for doc in self._tasks.find({"_id": {"$in": list(ids)}}, {"nexts": 1, "previous": 1}, session=session)
        }
        missing = set(ids) - found.keys()
        if missing:
            raise TaskNotFound(missing)
        return found

    # ---- id allocation --------------------------------------------------------------------------------------

    async def _raise_counter_to(self, task_id: int) -> None:
        await self._counters.update_one({"_id": TASK_COUNTER}, {"$max": {"seq": Int64(task_id)}}, upsert=True)

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
        last = int(counter["seq"])
        return list(range(last - count + 1, last + 1))

    @_translating_driver_errors
    async def sync_id_counter(self) -> None:
        """Move the id counter past every stored id, e.g. after ops tooling inserted tasks directly."""
        highest = await self._tasks.find_one({}, {"_id": 1}, sort=[("_id", -1)])
        if highest is not None and isinstance(highest["_id"], int):
            await self._raise_counter_to(highest["_id"])

    async def _existing_ids(self, ids: Collection[int]) -> set[int]:
        return {doc["_id"] async for doc in self._tasks.find({"_id": {"$in": list(ids)}}, {"_id": 1})}

    # ---- create ---------------------------------------------------------------------------------------------

    @_translating_driver_errors
    async def create_tasks(self, tasks: Sequence[TaskCreate]) -> list[TaskDoc]:
        """Create tasks and their nested `nexts` sub-graphs, all or nothing; returns them in request order."""
        plan = _plan_creation(tasks)
        client_ids = [item.spec.id for item in plan if item.spec.id is not None]
        repeated = _duplicate_ids(client_ids)
        if repeated:
            raise InvalidOperation(f"task id {', '.join(map(str, repeated))} appears more than once in the request")
        if client_ids:
            await self._raise_counter_to(max(client_ids))
            existing = await self._existing_ids(client_ids)
            if existing:
                raise TaskAlreadyExists(existing)
        for _ in range(_SERVER_ASSIGNED_ID_RETRIES):
            server_ids = iter(await self._allocate_ids(len(plan) - len(client_ids)))
            ids = [item.spec.id if item.spec.id is not None else next(server_ids) for item in plan]
            docs = _new_documents(plan, ids)
            try:
                await self._in_transaction(
                    lambda session, docs=docs: self._tasks.insert_many(docs, ordered=True, session=session)
                )
                return docs
            except OperationFailure as error:
                if not _is_duplicate_key(error):
                    raise
                taken = await self._existing_ids(ids)
                if taken & set(client_ids):
                    raise TaskAlreadyExists(taken & set(client_ids)) from None
                await self.sync_id_counter()  # a direct write took a server-assigned id: skip past it
        raise StorageUnavailable("could not allocate free task ids; is something writing ids past the counter?")

    # ---- read -----------------------------------------------------------------------------------------------

    @_translating_driver_errors
    async def get_task(self, task_id: int) -> TaskDoc:
        doc = await self._tasks.find_one({"_id": task_id})
        if doc is None:
            raise TaskNotFound([task_id])
        return doc

    @_translating_driver_errors
    async def get_tasks(self, ids: Collection[int]) -> dict[int, TaskDoc]:
        """The tasks that exist among `ids`, by id (unknown ids are simply absent)."""
        if not ids:
            return {}
        # The whole answer in the first batch, one more than can match so that the server closes the cursor:
        # one round trip, where the default (101 documents, then getMore) costs two or more.
        cursor = self._tasks.find({"_id": {"$in": list(ids)}}, batch_size=len(ids) + 1)
        return {doc["_id"]: doc async for doc in cursor}

    @_translating_driver_errors
    async def list_nexts(
        self, task_id: int, statuses: Collection[str] | None = None, task_type: str | None = None
    ) -> list[TaskDoc]:
        return await self._list_linked(task_id, "nexts", statuses, task_type)

    @_translating_driver_errors
    async def list_previous(
        self, task_id: int, statuses: Collection[str] | None = None, task_type: str | None = None
    ) -> list[TaskDoc]:
        return await self._list_linked(task_id, "previous", statuses, task_type)

    async def _list_linked(
        self, task_id: int, direction: str, statuses: Collection[str] | None, task_type: str | None
    ) -> list[TaskDoc]:
        doc = await self._tasks.find_one({"_id": task_id}, {direction: 1})
        if doc is None:
            raise TaskNotFound([task_id])
        linked = doc.get(direction) or []
        if not linked:
            return []
        return await self._find_sorted({"_id": {"$in": linked}, **task_filter(statuses, task_type)})

    @_translating_driver_errors
    async def list_job_tasks(
        self,
        job_id: str,
        root: bool | None = None,
        statuses: Collection[str] | None = None,
        task_type: str | None = None,
    ) -> list[TaskDoc]:
        """A job's tasks by ascending id, those whose `root` equals `root` when it is given."""
        query: dict[str, Any] = {"job-id": job_id, **task_filter(statuses, task_type)}
        if root is not None:
            query["root"] = root
        return await self._find_sorted(query)

    async def watch_task_events(self, job_id: str | None = None) -> AsyncIterator[TaskEvent]:
        """Every change to the tasks (of one job, if given), from a MongoDB change stream: whoever wrote it,
        through whichever gateway instance. The stream is open when the first event is awaited."""
        match: dict[str, Any] = {"operationType": {"$in": list(_EVENT_KINDS)}}
        if job_id is not None:
            # The pre-image lets a deletion (or a task moved to another job) reach the job's subscribers.
            match["$or"] = [{"fullDocument.job-id": job_id}, {"fullDocumentBeforeChange.job-id": job_id}]
        try:
            stream = await self._tasks.watch(
                [{"$match": match}], full_document="updateLookup", full_document_before_change="whenAvailable"
            )
        except (ServerSelectionTimeoutError, ConnectionFailure) as error:
            raise StorageUnavailable(f"MongoDB unavailable: {error}") from error
        async with stream:
            async for change in stream:
                kind = _EVENT_KINDS[change["operationType"]]
                task = None if kind is TaskEventKind.DELETED else change.get("fullDocument")
                yield TaskEvent(kind, change["documentKey"]["_id"], task)

    # ---- update ---------------------------------------------------------------------------------------------

    @_translating_driver_errors
    async def update_task(self, task_id: int, patch: TaskPatch) -> TaskDoc:
        """Merge `patch` into the task: present fields replace, null clears, absent fields stay."""
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
        doc = await self._tasks.find_one_and_update({"_id": task_id}, update, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise TaskNotFound([task_id])
        return doc

    # ---- links ----------------------------------------------------------------------------------------------

    @_translating_driver_errors
    async def add_nexts(self, task_id: int, next_ids: Collection[int]) -> list[TaskDoc]:
        """Link task_id -> each next id; returns all next tasks of task_id after the change."""
        return await self._add_links(task_id, [(task_id, other) for other in next_ids], "nexts")

    @_translating_driver_errors
    async def add_previous(self, task_id: int, previous_ids: Collection[int]) -> list[TaskDoc]:
        """Link each previous id -> task_id; returns all previous tasks of task_id after the change."""
        return await self._add_links(task_id, [(other, task_id) for other in previous_ids], "previous")

    async def _add_links(self, anchor: int, pairs: list[tuple[int, int]], listing: str) -> list[TaskDoc]:
        _refuse_self_links(pairs)

        async def work(session: AsyncClientSession) -> list[TaskDoc]:
            await self._counters.update_one({"_id": LINK_COUNTER}, {"$inc": {"seq": 1}}, upsert=True, session=session)
            involved = {task_id for pair in pairs for task_id in pair}
            docs = await self._require_ids(involved, session)
            new_pairs = [(a, b) for a, b in dict.fromkeys(pairs) if b not in (docs[a].get("nexts") or [])]
            if new_pairs:
                await self._refuse_cycles(new_pairs, session)
                await self._tasks.bulk_write(_link_updates(new_pairs, "$addToSet"), ordered=True, session=session)
            anchor_doc = await self._tasks.find_one({"_id": anchor}, {listing: 1}, session=session)
            return await self._find_sorted({"_id": {"$in": anchor_doc.get(listing) or []}}, session)

        async with self._link_lock:
            return await self._in_transaction(work)

    async def _refuse_cycles(self, new_pairs: list[tuple[int, int]], session: AsyncClientSession) -> None:
        """Refuse links a->b where a is already reachable from b (the link would close a cycle).

        The new pairs all share their source or their target, so no cycle can run through two of them:
        checking each against the stored graph is enough.
        """
        for source, target in new_pairs:
            if await self._reachable(target, source, session):
                raise InvalidOperation(f"linking task {source} to next task {target} would close a cycle")

    async def _reachable(self, start: int, goal: int, session: AsyncClientSession) -> bool:
        """Whether `goal` is downstream of `start`, searching from both ends and growing the smaller side."""
        forward, backward = {start}, {goal}
        seen_forward, seen_backward = {start}, {goal}
        while forward and backward:
            if len(forward) <= len(backward):
                forward = await self._step(forward, "nexts", seen_forward, session)
                if forward & seen_backward:
                    return True
            else:
                backward = await self._step(backward, "previous", seen_backward, session)
                if backward & seen_forward:
                    return True
        return False

    async def _step(self, frontier: set[int], direction: str, seen: set[int], session: AsyncClientSession) -> set[int]:
        """One breadth-first level: the not-yet-seen neighbours of `frontier`; marks them seen."""
        following: set[int] = set()
        async for doc in self._tasks.find({"_id": {"$in": list(frontier)}}, {direction: 1}, session=session):
            following.update(doc.get(direction) or ())
        following -= seen
        seen |= following
        return following

    @_translating_driver_errors
    async def remove_nexts(self, task_id: int, next_ids: Collection[int]) -> None:
        await self._remove_links([(task_id, other) for other in next_ids])

    @_translating_driver_errors
    async def remove_previous(self, task_id: int, previous_ids: Collection[int]) -> None:
        await self._remove_links([(other, task_id) for other in previous_ids])

    async def _remove_links(self, pairs: list[tuple[int, int]]) -> None:
        async def work(session: AsyncClientSession) -> None:
            await self._require_ids({task_id for pair in pairs for task_id in pair}, session)
            await self._tasks.bulk_write(_link_updates(list(dict.fromkeys(pairs)), "$pull"), session=session)

        await self._in_transaction(work)

    # ---- delete ---------------------------------------------------------------------------------------------

    @_translating_driver_errors
    async def delete_task(self, task_id: int) -> None:
        """Delete the task and every link to or from it, found through the indexes rather than its own arrays
        so that links written inconsistently by other tools are cleaned up too."""

        async def work(session: AsyncClientSession) -> None:
            await self._require_ids({task_id}, session)
            touched = {"$set": {"update-timestamp": now_utc()}}
            await self._tasks.update_many({"nexts": task_id}, {"$pull": {"nexts": task_id}, **touched}, session=session)
            await self._tasks.update_many(
                {"previous": task_id}, {"$pull": {"previous": task_id}, **touched}, session=session
            )
            await self._tasks.delete_one({"_id": task_id}, session=session)

        await self._in_transaction(work)


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
