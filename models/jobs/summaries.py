"""Summaries of jobs: counts, status counts and times of any number of jobs, as one `$group` over their tasks
(`summaries_pipeline`), read into JobSummary; a job's duration and progress from its summary."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any

from models.scopes import within
from models.stored_task import TaskDoc, as_dicts, readable_date_expression, readable_value
from models.task import INT64_MAX


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
        projection); None when a stored document is no task readers see: the aggregation, which leaves such
        documents out (TASK_ID_MATCH), counts then."""
        if self.stored != len(self.tasks):
            return None
        statuses = Counter(map(dict.get, as_dicts(self.tasks), repeat("status")))
        return JobSummary(task_count=len(self.tasks), status_counts=dict(statuses))


def _earlier(current: datetime | None, other: Any) -> datetime | None:
    if not isinstance(other, datetime):
        return current
    return other if current is None or other < current else current


def _later(current: datetime | None, other: Any) -> datetime | None:
    if not isinstance(other, datetime):
        return current
    return other if current is None or other > current else current


def _only_dates(field_name: str) -> dict[str, Any]:
    """The field when it holds a readable date, else null ($min and $max skip nulls; a string would sort
    before dates)."""
    return readable_date_expression(f"${field_name}")


TASK_ID_MATCH: dict[str, Any] = {
    "$type": ["int", "long", "double"],
    "$gt": 0,
    "$lte": INT64_MAX,
    # Matches only numbers a signed 64-bit integer holds exactly: no fractional double (2.5) passes.
    "$bitsAllClear": 0,
}
"""The stored ids that are task ids (models.stored_task.as_task_id), as a query on `_id`."""


def summaries_pipeline(job_ids: Collection[str], scope_clause: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows `summaries` reads, of the tasks of `scope_clause` (a caller's scope, models.scopes) when given."""
    match: dict[str, Any] = {"job-id": {"$in": list(job_ids)}, "_id": TASK_ID_MATCH}
    return [
        # Documents whose _id is no task id (models.stored_task.as_task_id: no number, or one no reader serves,
        # such as -5, 0, 2.5 or a Decimal128) count for nothing: the counts are of the tasks the pages show.
        {"$match": within(match, scope_clause)},
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
