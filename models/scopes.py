"""Job scopes: the job-id prefixes a caller may see and change, as the MongoDB filter every scoped read and
write carries. A task belongs to a scope when its `job-id` is a string starting with one of the prefixes; a task
without a job, or whose `job-id` a tool stored as anything but a string (an array, a document, a number, null),
is outside every scope. `None` is no scope at all: every task."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from models.creation import PlannedTask

JobScope = tuple[str, ...] | None
"""Job-id prefixes (a plain argument: no HTTP here); None: every job, and tasks without one."""


LAST_CODE_POINT = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)
"""Code points no string MongoDB is sent may hold (UTF-8 has none for them)."""


def prefix_range(prefix: str) -> dict[str, str]:
    """The strings starting with `prefix` (not empty), as an index range (a regex would make MongoDB fetch
    documents): up to the first string after them all, the prefix with its last character that can be raised
    raised to the next code point (over the surrogates, which UTF-8 cannot hold); without one (every character
    the last code point), no upper bound."""
    stem = prefix.rstrip(chr(LAST_CODE_POINT))
    if not stem:
        return {"$gte": prefix}
    following = ord(stem[-1]) + 1
    if following in SURROGATES:
        following = SURROGATES.stop
    return {"$gte": prefix, "$lt": stem[:-1] + chr(following)}


def in_scope(job_id: object, scope: JobScope) -> bool:
    """Whether a task of job `job_id` (a stored value: a string, None or anything a tool wrote) is in `scope`.
    Exactly a str: bson.Code (JavaScript, a str subclass) is no string to MongoDB, which no range matches."""
    if scope is None:
        return True
    return type(job_id) is str and any(job_id.startswith(prefix) for prefix in scope)


def any_in_scope(job_ids: Iterable[object], scope: JobScope) -> bool:
    """Whether a change concerning these jobs (a task's job before and after it) may be seen in `scope`: when
    one of them is in it (a task moved out of the scope is seen leaving); never for a task without a job."""
    return any(in_scope(job_id, scope) for job_id in job_ids)


def jobs_in_scope(job_ids: Iterable[str], scope: JobScope) -> list[str]:
    return [job_id for job_id in job_ids if in_scope(job_id, scope)]


def scope_filter(scope: JobScope, field: str = "job-id") -> dict[str, Any] | None:
    """The query clause of the documents in `scope` by their job `field` (a task's `job-id`, a history entry's
    `job`): `scope_ranges`, and the field no array. MongoDB matches a range against each element of an array, so
    a tool's `["b-7", "a-7"]` would be in scope `a-`: a job of another type is in no scope (numbers, documents,
    null and absent fields match no string range). None for no scope."""
    ranges = scope_ranges(scope, field)
    if ranges is None:
        return None
    return {"$and": [ranges, {field: {"$not": {"$type": "array"}}}]}


def scope_ranges(scope: JobScope, field: str = "job-id") -> dict[str, Any] | None:
    """The job `field` within the prefixes of `scope`, as index ranges (no regex, which would make MongoDB fetch
    documents); None for no scope. An empty prefix is every string; no prefix at all is no document. An array
    holding such a string matches too: only a query that groups by the field itself, so that an array is a group
    of its own, may use the ranges without `scope_filter`."""
    if scope is None:
        return None
    if "" in scope:
        return {field: {"$type": "string"}}
    if not scope:
        return {"_id": {"$in": []}}
    ranges = [{field: prefix_range(prefix)} for prefix in dict.fromkeys(scope)]
    return ranges[0] if len(ranges) == 1 else {"$or": ranges}


def within(query: dict[str, Any], clause: dict[str, Any] | None) -> dict[str, Any]:
    """`query` narrowed to the tasks of a scope's `clause` (unchanged without one)."""
    return query if clause is None else {"$and": [query, clause]}


def planned_jobs(plan: Sequence[PlannedTask]) -> list[object]:
    """The job each planned task will be stored with: its own `job-id`, else its parent's (models.creation)."""
    jobs: list[object] = []
    for planned in plan:
        inherited = jobs[planned.parent] if planned.parent is not None else None
        jobs.append(planned.fields.get("job-id", inherited))
    return jobs
