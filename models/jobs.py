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

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models.layout import readable_date_expression, readable_value

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


def _earlier(current: datetime | None, other: Any) -> datetime | None:
    if not isinstance(other, datetime):
        return current
    return other if current is None or other < current else current


def _later(current: datetime | None, other: Any) -> datetime | None:
    if not isinstance(other, datetime):
        return current
    return other if current is None or other > current else current


def prefix_range(prefix: str) -> dict[str, str]:
    """The strings starting with `prefix`, as an index range (a regex would make MongoDB fetch documents)."""
    return {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


def jobs_pipeline(
    first: int, after: JobPosition | None, job_filter: JobFilter, job_ids: Collection[str] | None
) -> list[dict[str, Any]]:
    """Newest activity first, then by id. `job_ids` narrows to jobs found by the status filter."""
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
        if type(row["_id"]) is str  # bson.Code is a str too, but no job id (nor hashable)
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


def summaries(rows: Iterable[dict[str, Any]], done_statuses: Collection[str]) -> dict[str, JobSummary]:
    found: dict[str, JobSummary] = defaultdict(JobSummary)
    for row in rows:
        status = readable_value("status", row["_id"].get("status"))
        summary = found[row["_id"]["job"]]
        summary.add(status, row["count"], row["firstStart"], row["lastFinish"], row["lastUpdate"])
        if status in done_statuses:
            summary.done_count += row["count"]
    return dict(found)


def is_snapshot_too_old(code: int | None) -> bool:
    return code == _SNAPSHOT_TOO_OLD
