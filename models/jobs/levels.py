"""A job's stages: each task's depth from the job's roots (models.graph.stage_depths), counted by stage and
status with the tasks blocked at each (`count_levels`). Read from every task's links and status only, packed by
LEVELS_CHUNK tasks into each answer document (`links_pipeline`) and unpacked as readers see them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from bson.int64 import Int64

from models.graph import stage_depths
from models.stored_task import as_task_id, readable_task, readable_value

LEVELS_BOUND_FACTOR = 10
"""Job.levels reads only links and statuses, so it is bounded at this many times TRACKING_GRAPHQL_MAX_TRAVERSAL."""
LEVEL_FIELDS = ("nexts", "status")
LEVELS_CHUNK = 1000
"""Tasks (by id range) packed into one answer document when a job's links are read for its stages."""
TOO_LARGE_CODES = {10334, 17419, 146}
"""BSONObjectTooLarge, a $group result over 16 MiB, ExceededMemoryLimit (a $push over 100 MB)."""
UNDER_WAY_STATUSES = frozenset({"RUNNING", "FAILED", "ERROR"})
"""Statuses of a task that has started (and is running or has failed), so it is no longer waiting on anything:
never counted as blocked. FAILED and ERROR are the statuses the live view shows as failures (ui/status.js)."""


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


def links_pipeline(job_query: dict[str, Any]) -> list[dict[str, Any]]:
    """The ids, statuses and `nexts` of the tasks of `job_query` (a job's, as Storage.of_job gives it), LEVELS_CHUNK
    ids to an answer document, as three arrays in the same order (a missing field pushed as null or [], so they
    stay aligned). Documents whose _id is no number are no tasks (models.stored_task)."""
    return [
        {"$match": {**job_query, "_id": {"$type": "number"}}},
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
    """The rows of `links_pipeline` as JobLinks, each task as readers see it (models.stored_task: its id a task id,
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


@dataclass(frozen=True)
class JobStages:
    """A job's tasks (their links and statuses) and the stage of each, by position: what Job.levels counts and a
    page of tasks by stage keeps, read and computed once per request however many fields use them."""

    links: JobLinks
    successors: list[list[int]]
    """For each task, the positions of its next tasks among the job's (links to other jobs left out)."""
    depths: list[int]

    @classmethod
    def of(cls, links: JobLinks) -> JobStages:
        """The stages of the tasks of `links`; GraphCycle when their links hold a cycle."""
        successors = _successor_positions(links)
        return cls(links, successors, stage_depths(links.ids, successors))

    def ids_at(self, depth: int) -> list[int]:
        """The ids of the tasks at stage `depth`, ascending."""
        return sorted(task_id for task_id, found in zip(self.links.ids, self.depths, strict=True) if found == depth)


def _successor_positions(links: JobLinks) -> list[list[int]]:
    """For each task, the positions of its next tasks among the job's."""
    position = {task_id: index for index, task_id in enumerate(links.ids)}
    return [[position[i] for i in nexts if i in position] for nexts in links.nexts]


def count_levels(stages: JobStages, done_statuses: Collection[str]) -> list[JobLevel]:
    """The job's stages, shallowest first, with counts by status and of blocked tasks (JobLevel)."""
    successors, depths = stages.successors, stages.depths
    statuses = stages.links.statuses
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
