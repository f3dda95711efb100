"""Jobs at fleet scale: MongoDB aggregations over the `tasks` indexes, never a job loaded into Python.

- Listing jobs walks the `job-id`+`update-timestamp` index once per job (a DISTINCT_SCAN: one index key per
  job, whatever the job's size), then sorts the jobs by their latest update.
- A page of jobs is read at the cluster time of the listing's first page (a MongoDB snapshot read), so paging
  is stable while jobs change: no job twice, none skipped that existed throughout. MongoDB keeps that history
  for `minSnapshotHistoryWindowInSeconds` (300 s by default); a cursor older than that goes on from the same
  position over the current data.
- Summaries and status counts of any number of jobs are one `$group` over their tasks.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any

from bson.int64 import Int64
from bson.timestamp import Timestamp
from pymongo import ASCENDING
from pymongo.errors import OperationFailure

from models.errors import TraversalTooLarge
from models.graph import critical_path, stage_depths
from models.layout import (
    TaskDoc,
    as_task_id,
    readable_date_expression,
    readable_projected_tasks,
    readable_task,
    readable_tasks,
    readable_value,
)
from models.scopes import prefix_range, within
from models.storage import LIST_BATCH_SIZE, Storage
from models.task import now_utc

log = logging.getLogger(__name__)

_SNAPSHOT_TOO_OLD = 239
JOBS_INDEX = "job-id_update-timestamp"


@dataclass(frozen=True)
class JobFilter:
    id_prefix: str | None = None
    statuses: list[str] | None = None
    """Jobs having a task in any of these statuses."""
    updated_after: datetime | None = None
    updated_before: datetime | None = None


@dataclass(frozen=True)
class JobPosition:
    """Where a page of jobs ended: the jobs after it come next."""

    last_update: datetime | None
    job_id: str


@dataclass(frozen=True)
class JobListing:
    job_id: str
    last_update: datetime | None


@dataclass(frozen=True)
class JobsPage:
    jobs: list[JobListing]
    has_next: bool
    snapshot: tuple[int, int] | None
    """The cluster time (seconds, increment) the page was read at; later pages read at it too."""


@dataclass
class JobSummary:
    task_count: int = 0
    done_count: int = 0
    first_start: datetime | None = None
    last_finish: datetime | None = None
    last_update: datetime | None = None
    status_counts: dict[str | None, int] = field(default_factory=dict)

    def add(self, status: str | None, count: int, first_start: Any, last_finish: Any, last_update: Any) -> None:
        self.task_count += count
        self.status_counts[status] = self.status_counts.get(status, 0) + count
        self.first_start = _earlier(self.first_start, first_start)
        self.last_finish = _later(self.last_finish, last_finish)
        self.last_update = _later(self.last_update, last_update)


@dataclass(frozen=True)
class ProjectedJob:
    """A whole job read with a projection (GraphStore.job_task_fields): its tasks as readers see them, and how
    many stored documents carry its job id (0: no such job)."""

    tasks: list[TaskDoc]
    stored: int

    def counts(self) -> JobSummary | None:
        """`task_count` and `status_counts` as `summaries` gives them, from the tasks read (with `status` in the
        projection); None when a stored document is no task readers see, which the aggregation counts its own
        way (a number id that is no task id)."""
        if self.stored != len(self.tasks):
            return None
        statuses = Counter(map(dict.get, self.tasks, repeat("status")))
        return JobSummary(task_count=len(self.tasks), status_counts=dict(statuses))


def _earlier(current: datetime | None, other: Any) -> datetime | None:
    if not isinstance(other, datetime):
        return current
    return other if current is None or other < current else current


def _later(current: datetime | None, other: Any) -> datetime | None:
    if not isinstance(other, datetime):
        return current
    return other if current is None or other > current else current


def jobs_pipeline(
    first: int,
    after: JobPosition | None,
    job_filter: JobFilter,
    job_ids: Collection[str] | None,
    scope_clause: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Newest activity first, then by id. `job_ids` narrows to jobs found by the status filter, `scope_clause`
    to the jobs of a caller's scope (models.scopes)."""
    match: dict[str, Any] = {}
    if job_filter.id_prefix:
        match["job-id"] = prefix_range(job_filter.id_prefix)
    if job_ids is not None:
        match.setdefault("job-id", {})["$in"] = list(job_ids)
    # Tasks without a job-id form one group whose id is null; it is dropped in Python (`jobs_page`): a $match
    # on the group's _id here would be moved before the $group and cost the DISTINCT_SCAN.
    after_group: list[dict[str, Any]] = []
    updated: dict[str, Any] = {}
    if job_filter.updated_after is not None:
        updated["$gt"] = job_filter.updated_after
    if job_filter.updated_before is not None:
        updated["$lt"] = job_filter.updated_before
    if updated:
        after_group.append({"$match": {"lastUpdate": updated}})
    if after is not None:
        after_group.append({"$match": _after(after)})
    if scope_clause is not None:
        match = within(match, scope_clause)
    return [
        *([{"$match": match}] if match else []),
        # $sort on the index's own order, then $first: MongoDB answers with one index key per job.
        {"$sort": {"job-id": 1, "update-timestamp": -1}},
        {"$group": {"_id": "$job-id", "lastUpdate": {"$first": "$update-timestamp"}}},
        # A job's latest update as readers see it (a wrong type or a date beyond year 9999 is none), so the
        # order, the page positions and what is served agree.
        {"$set": {"lastUpdate": readable_date_expression("$lastUpdate")}},
        *after_group,
        {"$sort": {"lastUpdate": -1, "_id": 1}},
        {"$limit": first + 2},  # one more than the page, and room for the group of tasks without a job-id
    ]


def _after(position: JobPosition) -> dict[str, Any]:
    """The jobs that sort after `position` (a job without any update-timestamp sorts last)."""
    if position.last_update is None:
        return {"lastUpdate": None, "_id": {"$gt": position.job_id}}
    return {
        "$or": [
            {"lastUpdate": {"$lt": position.last_update}},
            {"lastUpdate": position.last_update, "_id": {"$gt": position.job_id}},
            {"lastUpdate": None},
        ]
    }


def jobs_page(rows: list[dict[str, Any]], first: int, snapshot: tuple[int, int] | None) -> JobsPage:
    listings = [
        JobListing(row["_id"], row["lastUpdate"] if isinstance(row["lastUpdate"], datetime) else None)
        for row in rows
        if type(row["_id"]) is str  # not a str subclass such as bson.Code: the reader leaves those out
    ]
    return JobsPage(listings[:first], len(listings) > first, snapshot)


def _only_dates(field_name: str) -> dict[str, Any]:
    """The field when it holds a readable date, else null ($min and $max skip nulls; a string would sort
    before dates)."""
    return readable_date_expression(f"${field_name}")


def summaries_pipeline(job_ids: Collection[str]) -> list[dict[str, Any]]:
    return [
        # Documents whose _id is no number are no tasks (models.layout), so they count for nothing.
        {"$match": {"job-id": {"$in": list(job_ids)}, "_id": {"$type": "number"}}},
        {
            "$group": {
                "_id": {"job": "$job-id", "status": "$status"},
                "count": {"$sum": 1},
                "firstStart": {"$min": _only_dates("start-time")},
                "lastFinish": {"$max": _only_dates("finish-time")},
                "lastUpdate": {"$max": _only_dates("update-timestamp")},
            }
        },
    ]


def summaries(
    rows: Iterable[dict[str, Any]], job_ids: Collection[str], done_statuses: Collection[str]
) -> dict[str, JobSummary]:
    """The summary of each of `job_ids` from the rows of `summaries_pipeline`. A stored `job-id` that is an
    array (a tool's) matches each id it holds, as MongoDB's queries do; one of another type matches none."""
    found: dict[str, JobSummary] = defaultdict(JobSummary)
    for row in rows:
        status = readable_value("status", row["_id"].get("status"))
        for job_id in _job_ids_in(row["_id"].get("job"), job_ids):
            summary = found[job_id]
            summary.add(status, row["count"], row["firstStart"], row["lastFinish"], row["lastUpdate"])
            if status in done_statuses:
                summary.done_count += row["count"]
    return dict(found)


def _job_ids_in(stored: Any, job_ids: Collection[str]) -> list[str]:
    held = stored if isinstance(stored, list) else [stored]
    return list(dict.fromkeys(job_id for job_id in held if isinstance(job_id, str) and job_id in job_ids))


def is_snapshot_too_old(code: int | None) -> bool:
    return code == _SNAPSHOT_TOO_OLD


class JobReads:
    """The reads of whole jobs: listing them, their summaries, their tasks in full or by page, their critical
    path. A read of every task of a job is refused over a bound, counted on the index first."""

    def __init__(self, storage: Storage, done_statuses: Collection[str]) -> None:
        self._storage = storage
        self._done_statuses = done_statuses

    async def list_jobs(
        self, first: int, after: JobPosition | None, job_filter: JobFilter, snapshot: tuple[int, int] | None
    ) -> JobsPage:
        """Up to `first` jobs after `after`, newest activity first, read at `snapshot` when MongoDB still holds
        it, else at a new one (see the module's docstring)."""
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
        tasks = self._storage.tasks.name
        job_ids = None
        if job_filter.statuses:
            having = self._storage.within({"status": {"$in": job_filter.statuses}})
            distinct = {"distinct": tasks, "key": "job-id", "query": having}
            reply = await self._storage.command({**distinct, "readConcern": read_concern})
            job_ids = [job_id for job_id in reply["values"] if isinstance(job_id, str)]
            read_concern = {"level": "snapshot", "atClusterTime": reply["atClusterTime"]}
        pipeline = jobs_pipeline(first, after, job_filter, job_ids, self._storage.scope_clause)
        command = {
            "aggregate": tasks,
            "pipeline": pipeline,
            "cursor": {},
            "readConcern": read_concern,
            "hint": JOBS_INDEX,  # the plan that reads one key per job (see the module's docstring)
        }
        cursor = (await self._storage.command(command))["cursor"]
        at = cursor.get("atClusterTime") or read_concern.get("atClusterTime")
        return jobs_page(cursor["firstBatch"], first, (at.time, at.inc) if at is not None else None)

    async def summaries(self, job_ids: Collection[str]) -> dict[str, JobSummary]:
        """Counts, status counts and times of each of these jobs that has tasks, by job id, in one aggregation."""
        rows = await (await self._storage.tasks.aggregate(summaries_pipeline(job_ids))).to_list(None)
        return summaries(rows, job_ids, self._done_statuses)

    async def exists(self, job_id: str) -> bool:
        """Whether any task belongs to the job."""
        return await self._storage.tasks.find_one({"job-id": job_id}, {"_id": 1}) is not None

    async def tasks(self, job_id: str, bound: int) -> list[TaskDoc]:
        """Every task of the job by ascending id; TraversalTooLarge over `bound`."""
        await self._refuse_job_over(job_id, bound, "list every task of it")
        return await self._storage.find_sorted({"job-id": job_id})

    async def task_fields(self, job_id: str, fields: Collection[str] | None, bound: int) -> ProjectedJob:
        """Every task of the job by ascending id with only `fields` (stored names; None: all) besides `_id`, as
        one find of at most `bound` + 1 documents (no count first: a job within the bound, the usual case, costs
        one round trip); TraversalTooLarge over `bound`, as `tasks`."""
        projection = {"_id": 1, **dict.fromkeys(fields, 1)} if fields is not None else None
        cursor = self._storage.tasks.find({"job-id": job_id}, projection, limit=bound + 1, batch_size=LIST_BATCH_SIZE)
        docs = await cursor.sort("_id", ASCENDING).to_list(None)
        if len(docs) > bound:
            await self._refuse_job_over(job_id, bound, "list every task of it", at_least=len(docs))
        readable = readable_projected_tasks(docs, projection) if projection is not None else readable_tasks(docs)
        return ProjectedJob(readable, len(docs))

    async def _refuse_job_over(self, job_id: str, bound: int, what: str, at_least: int = 0) -> int:
        """How many documents carry the job id; TraversalTooLarge over `bound` (or when `at_least` documents
        were already seen, say before a concurrent delete)."""
        count = max(await self._storage.tasks.count_documents({"job-id": job_id}), at_least)
        if count > bound:
            raise TraversalTooLarge(
                f"traversal bound exceeded: job {job_id} has {count} tasks, more than {bound} "
                f"(TRACKING_GRAPHQL_MAX_TRAVERSAL), too many to {what}: page through them with Job.taskPage"
            )
        return count

    async def task_page(
        self, job_id: str, first: int, after_id: int | None, task_query: dict[str, Any], stage: StageFilter | None
    ) -> tuple[list[TaskDoc], bool]:
        """Up to `first` tasks of the job matching `task_query` (and in `stage`, when given) after `after_id`, by
        id, and whether more follow. Ids never change, so paging by id yields each task once however the job
        changes meanwhile. A stage costs what `levels` costs (every task's links read), on every page."""
        query: dict[str, Any] = {"job-id": job_id, **task_query}
        ids: dict[str, Any] = {}
        if stage is not None:
            ids["$in"] = await self.stage_ids(job_id, stage.depth, stage.bound)
        if after_id is not None:
            ids["$gt"] = after_id
        if ids:
            query["_id"] = ids
        cursor = self._storage.tasks.find(query, sort=[("_id", ASCENDING)], limit=first + 1, batch_size=first + 1)
        docs = readable_tasks(await cursor.to_list(None))
        return docs[:first], len(docs) > first

    async def levels(self, job_id: str, bound: int) -> list[JobLevel]:
        """The job's tasks counted by stage and status (count_levels), reading only their links and status;
        TraversalTooLarge over `bound` tasks, GraphCycle when the stored links hold a cycle."""
        return count_levels(await self._links_and_statuses(job_id, bound), self._done_statuses)

    async def stage_ids(self, job_id: str, depth: int, bound: int) -> list[int]:
        """The ids of the job's tasks at stage `depth` (as `levels` counts them), ascending; errors as `levels`."""
        links = await self._links_and_statuses(job_id, bound)
        return sorted(task_id for task_id, found in zip(links.ids, task_stages(links), strict=True) if found == depth)

    async def _links_and_statuses(self, job_id: str, bound: int) -> JobLinks:
        """Every task's id, status and next tasks; TraversalTooLarge over `bound` tasks. Read as one aggregation
        that packs LEVELS_CHUNK tasks into each answer document (`links_pipeline`): decoding a few hundred
        arrays instead of a document per task halves the time and the memory of a 100,000-task job
        (bench/README.md). A chunk MongoDB refuses to build (over 16 MiB: tasks with very many links) falls
        back to one projected document per task."""
        count = await self._storage.tasks.count_documents({"job-id": job_id})
        if count > bound:
            raise TraversalTooLarge(
                f"traversal bound exceeded: job {job_id} has {count} tasks, more than {bound} "
                f"({LEVELS_BOUND_FACTOR} x TRACKING_GRAPHQL_MAX_TRAVERSAL), too many to count by stage: "
                "use Job.statusCounts"
            )
        try:
            cursor = await self._storage.tasks.aggregate(links_pipeline(job_id), batchSize=LIST_BATCH_SIZE)
            return unpack_links(await cursor.to_list(None))
        except OperationFailure as error:
            if error.code not in _TOO_LARGE:
                raise
            log.info("job %s: links too large to pack by %d tasks (%s); reading them task by task", job_id,
                     LEVELS_CHUNK, error)  # fmt: skip
        projection = dict.fromkeys(LEVEL_FIELDS, 1)
        documents = self._storage.tasks.find({"job-id": job_id}, projection, batch_size=100)
        links = JobLinks()
        async for doc in documents:  # one batch of documents held at a time
            task = readable_projected_tasks([doc], projection)
            if task:
                links.add(task[0]["_id"], task[0].get("status"), task[0].get("nexts") or [])
        return links

    async def critical_path(self, job_id: str, bound: int) -> list[TaskDoc]:
        """The tasks of the job's longest chain by duration (models.graph.critical_path), first to last;
        TraversalTooLarge over `bound` tasks, GraphCycle when the stored links hold a cycle."""
        await self._refuse_job_over(job_id, bound, "find its critical path")
        projection = {"nexts": 1, "previous": 1, "start-time": 1, "finish-time": 1}
        cursor = self._storage.tasks.find({"job-id": job_id}, projection, batch_size=LIST_BATCH_SIZE)
        timing = {doc["_id"]: doc for doc in readable_tasks(await cursor.to_list(None))}
        path = critical_path(timing, now_utc())
        found = await self._storage.find_by_ids(path)
        return [found[task_id] for task_id in path if task_id in found]


LEVELS_BOUND_FACTOR = 10
"""Job.levels reads only links and statuses, so it is bounded at this many times TRACKING_GRAPHQL_MAX_TRAVERSAL."""
LEVEL_FIELDS = ("nexts", "status")
LEVELS_CHUNK = 1000
"""Tasks (by id range) packed into one answer document when a job's links are read for its stages."""
_TOO_LARGE = {10334, 17419, 146}
"""BSONObjectTooLarge, a $group result over 16 MiB, ExceededMemoryLimit (a $push over 100 MB)."""
UNDER_WAY_STATUSES = frozenset({"RUNNING", "FAILED", "ERROR"})
"""Statuses of a task that has started (and is running or has failed), so it is no longer waiting on anything:
never counted as blocked. FAILED and ERROR are the statuses the live view shows as failures (ui/status.js)."""


@dataclass(frozen=True)
class StageFilter:
    """Only the tasks at this stage (depth), found by reading every task's links: refused over `bound` tasks."""

    depth: int
    bound: int


@dataclass(frozen=True)
class JobLevel:
    """The tasks of one stage of a job (models.graph.stage_depths): how many, how many in each status (None: no
    status), and how many are blocked: waiting on a previous task of the job that is not done (its `blockedBy` is
    not empty, counting the links within the job) while not done itself nor under way (UNDER_WAY_STATUSES)."""

    depth: int
    count: int
    status_counts: dict[str | None, int]
    blocked_count: int


@dataclass
class JobLinks:
    """A job's tasks as parallel lists: ids, statuses (None: none) and next tasks (ids, maybe of other jobs)."""

    ids: list[int] = field(default_factory=list)
    statuses: list[str | None] = field(default_factory=list)
    nexts: list[list[int]] = field(default_factory=list)

    def add(self, task_id: int, status: Any, nexts: list[int]) -> None:
        self.ids.append(task_id)
        self.statuses.append(status if isinstance(status, str) else None)
        self.nexts.append(nexts)


def links_pipeline(job_id: str) -> list[dict[str, Any]]:
    """The job's tasks' ids, statuses and `nexts`, LEVELS_CHUNK ids to an answer document, as three arrays in
    the same order (a missing field pushed as null or [], so they stay aligned). Documents whose _id is no
    number are no tasks (models.layout)."""
    return [
        {"$match": {"job-id": job_id, "_id": {"$type": "number"}}},
        {
            "$group": {
                "_id": {"$floor": {"$divide": ["$_id", LEVELS_CHUNK]}},
                "ids": {"$push": "$_id"},
                "statuses": {"$push": {"$ifNull": ["$status", None]}},
                "nexts": {"$push": {"$ifNull": ["$nexts", []]}},
            }
        },
    ]


def unpack_links(rows: list[dict[str, Any]]) -> JobLinks:
    """The rows of `links_pipeline` as JobLinks, each task as readers see it (models.layout: its id a task id,
    its status a string or none, its links task ids, each once)."""
    links = JobLinks()
    for row in rows:
        if _clean_chunk(row["ids"], row["statuses"], row["nexts"]):
            links.ids.extend(row["ids"])
            links.statuses.extend(row["statuses"])
            links.nexts.extend(row["nexts"])
            continue
        for raw_id, status, nexts in zip(row["ids"], row["statuses"], row["nexts"], strict=True):
            if _clean_links(nexts) and (task_id := as_task_id(raw_id)) is not None:
                links.add(task_id, status if type(status) is str else readable_value("status", status), nexts)
                continue
            task = readable_task({"_id": raw_id, "status": status, "nexts": nexts, "previous": []})
            if task is not None:
                links.add(task["_id"], task.get("status"), task["nexts"])
    return links


_ID_TYPES = frozenset({int, Int64})
_STATUS_TYPES = frozenset({str, type(None)})
_LINK_TYPES = frozenset({Int64})


def _clean_chunk(ids: list[Any], statuses: list[Any], nexts: list[Any]) -> bool:
    """Whether a whole chunk of `links_pipeline` is as readers see it already (the usual case), checked a column
    at a time in C-level passes rather than task by task: ids positive integers (BSON integers are in int64's
    range), statuses strings or none, links lists of positive int64 ids without repeats (as `_clean_links`)."""
    if not ids or not set(map(type, ids)) <= _ID_TYPES or min(ids) <= 0:
        return False
    if not set(map(type, statuses)) <= _STATUS_TYPES or not set(map(type, nexts)) <= {list}:
        return False
    linked = [target for targets in nexts for target in targets]
    if linked and (not set(map(type, linked)) <= _LINK_TYPES or min(linked) <= 0):
        return False
    return list(map(len, map(set, nexts))) == list(map(len, nexts))


def _clean_links(nexts: Any) -> bool:
    return type(nexts) is list and all(type(i) is Int64 and i > 0 for i in nexts) and len(set(nexts)) == len(nexts)


def task_stages(links: JobLinks) -> list[int]:
    """The stage of each task of `links`, by position (links to tasks outside them ignored); GraphCycle when
    their links hold a cycle."""
    return stage_depths(links.ids, _successor_positions(links))


def _successor_positions(links: JobLinks) -> list[list[int]]:
    """For each task, the positions of its next tasks among the job's."""
    position = {task_id: index for index, task_id in enumerate(links.ids)}
    return [[position[i] for i in nexts if i in position] for nexts in links.nexts]


def count_levels(links: JobLinks, done_statuses: Collection[str]) -> list[JobLevel]:
    """The stages of the tasks in `links` (links to tasks outside them ignored), shallowest first, with counts
    by status and of blocked tasks (JobLevel); GraphCycle when their links hold a cycle."""
    successors = _successor_positions(links)
    depths = stage_depths(links.ids, successors)
    statuses = links.statuses
    waiting = [False] * len(statuses)  # a previous task is not done
    for index, status in enumerate(statuses):
        if status not in done_statuses:
            for target in successors[index]:
                waiting[target] = True
    counts: dict[int, Counter[str | None]] = defaultdict(Counter)
    blocked: Counter[int] = Counter()
    for index, status in enumerate(statuses):
        counts[depths[index]][status] += 1
        if waiting[index] and status not in done_statuses and status not in UNDER_WAY_STATUSES:
            blocked[depths[index]] += 1
    return [
        JobLevel(depth, sum(by_status.values()), dict(by_status), blocked[depth])
        for depth, by_status in sorted(counts.items())
    ]


def job_duration_ms(summary: JobSummary, now: datetime) -> int | None:
    """How long the job has run, in milliseconds (truncated): its last finish-time, or `now` without one, minus
    its first start-time; None without a start-time."""
    if summary.first_start is None:
        return None
    end = summary.last_finish or now
    return int((end - summary.first_start).total_seconds() * 1000)


def job_progress(summary: JobSummary) -> float:
    """The share of the job's tasks that are done, from 0 to 1 (0 for a job without tasks)."""
    return summary.done_count / summary.task_count if summary.task_count else 0.0
