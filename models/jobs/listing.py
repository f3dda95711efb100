"""Listing jobs: a page of jobs, newest activity first, as one MongoDB aggregation over the `tasks` indexes.

- Listing jobs walks the `job-id`+`update-timestamp` index once per job (a DISTINCT_SCAN: one index key per
  job, whatever the job's size), then sorts the jobs by their latest update.
- A page of jobs is read at the cluster time of the listing's first page (a MongoDB snapshot read), so paging
  is stable while jobs change: no job twice, none skipped that existed throughout. MongoDB keeps that history
  for `minSnapshotHistoryWindowInSeconds` (300 s by default); a cursor older than that goes on from the same
  position over the current data.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.scopes import prefix_range, within
from models.stored_task import readable_date_expression

_SNAPSHOT_GONE = frozenset({239, 246})
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
    if "job-id" not in match:
        # Strings only (symbols compare as strings), read off the index: a job-id stored as JavaScript holding a
        # job's name was grouped apart from that job, then served as a string, the job listed twice.
        match["job-id"] = {"$gte": ""}
    # Tasks without a job-id form one group whose id is null, and each job-id a tool stored as no string (an
    # array, a number, a document, JavaScript) one of its own: no job, yet it would take a place on the page
    # before $limit. They are matched out after the group on a field computed there (`JOB_GROUP`): a $match on
    # the group's _id would be moved before the $group and cost the DISTINCT_SCAN.
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
        {"$set": {"lastUpdate": readable_date_expression("$lastUpdate"), JOB_GROUP: _IS_STRING_ID}},
        {"$match": {JOB_GROUP: True}},
        {"$unset": JOB_GROUP},
        *after_group,
        {"$sort": {"lastUpdate": -1, "_id": 1}},
        {"$limit": first + 1},  # one more than the page: whether another follows
    ]


JOB_GROUP = "isJob"
"""The field the listing computes on each group: whether its id, the stored job-id, is a string (a job)."""
_IS_STRING_ID: dict[str, Any] = {"$in": [{"$type": "$_id"}, ["string", "symbol"]]}
"""A BSON symbol (a deprecated type old drivers write) is a string to every other reader: MongoDB compares it as
one (so a scope's range holds it) and PyMongo decodes it as a `str`."""


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


def is_snapshot_too_old(code: int | None) -> bool:
    """Whether MongoDB cannot read at a listing's snapshot any more: older than it keeps (SnapshotTooOld), or
    older than the collection's last catalog change (SnapshotUnavailable: a restore, a collMod, a restart)."""
    return code in _SNAPSHOT_GONE
