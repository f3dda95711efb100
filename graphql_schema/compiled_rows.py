"""Row builders of the compiled path: answers built from the rows read, a column at a time, from plain functions
and data (no code is generated): task scalars as graphql-core serializes them, a job's edges, status counts,
summary and a task's history."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import chain, compress, repeat
from operator import itemgetter
from typing import Any

from graphql_schema.compiled_objects import objects
from graphql_schema.compiled_plan import TYPENAME, NotCompiled
from graphql_schema.jobs import as_summary
from graphql_schema.tasks import graphql_field_names
from models import JobSummary, TaskChange, TaskDoc, TaskEventKind, format_datetime
from models.stored_task import DATE, FIELD_KINDS, as_dicts

INT32 = range(-(2**31), 2**31)
"""What GraphQL's Int holds (GraphQL spec §3.5.1); graphql-core refuses other values with an error."""


_KIND_NAMES = {kind.value: kind.name for kind in TaskEventKind}
"""A recorded change's kind as GraphQL names it (what TaskEventKind(kind).name gives, without an enum call)."""


def history_rows(changes: list[TaskChange], leaves: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Task.history as graphql_schema.tasks.as_changes shows it."""
    columns: list[Iterable[Any]] = []
    for _, name in leaves:
        if name == "at":
            columns.append([format_datetime(change.at) for change in changes])
        elif name == "kind":
            columns.append([_KIND_NAMES.get(change.kind) or TaskEventKind(change.kind).name for change in changes])
        elif name == "changedFields":
            columns.append([graphql_field_names(change.changed_fields) for change in changes])
        elif name in ("cursor", "status"):
            columns.append([getattr(change, name) for change in changes])
        else:
            columns.append(repeat("TaskChange", len(changes)))
    return objects([key for key, _ in leaves], columns)


Column = Callable[[list[TaskDoc]], Iterable[Any]]
"""One field of every task of a list, in order."""


def column(stored: str) -> Column:
    """How graphql-core would serve a Task field (graphql_schema.fields.read_field and the scalars) from
    documents as readers see them: models.stored_task.readable_task leaves every known field of its declared kind or
    absent (an Int within 32 bits), which String, Int and Boolean serialize as they are; dates in the API
    format."""
    if stored == "id":
        return _task_ids
    if stored == TYPENAME:
        return lambda docs: repeat("Task", len(docs))
    kind = FIELD_KINDS.get(stored)
    if kind is None:
        raise NotCompiled(f"{stored}: no declared kind")
    if kind == DATE:
        return lambda docs: map(_date, map(dict.get, as_dicts(docs), repeat(stored)))
    return lambda docs: map(dict.get, as_dicts(docs), repeat(stored))


def _task_ids(docs: list[TaskDoc]) -> Iterable[str]:
    return map(str, map(itemgetter("_id"), docs))


def _date(value: datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


def graphql_int(value: object) -> int:
    if type(value) is not int or value not in INT32:
        raise NotCompiled("not a GraphQL Int")
    return value


def edge_rows(docs: list[TaskDoc], leaves: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Job.edges: every link between two tasks of the job, by task id then as stored, built a column at a time
    like `_tasks` (each id's string made once)."""
    ids = list(map(itemgetter("_id"), docs))
    strings = list(map(str, ids))
    names = dict(zip(ids, strings, strict=True))
    links = list(map(itemgetter("nexts"), docs))  # readable documents read with nexts always hold the list
    sources = list(chain.from_iterable(map(repeat, strings, map(len, links))))
    targets = list(map(names.get, chain.from_iterable(links)))
    if None in targets:  # links to tasks of other jobs (or gone) are no edges of this one
        kept = [target is not None for target in targets]
        sources, targets = list(compress(sources, kept)), list(compress(targets, kept))
    columns = [
        sources if name == "from" else targets if name == "to" else repeat("Edge", len(sources)) for _, name in leaves
    ]
    return objects([key for key, _ in leaves], columns)


def status_count_rows(counts: dict[str | None, int], leaves: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Status counts as graphql_schema.jobs.ordered_counts gives them: null first, then by status."""
    ordered = sorted(counts.items(), key=lambda item: (item[0] is not None, item[0] or ""))
    return [
        {
            key: status if name == "status" else graphql_int(count) if name == "count" else "StatusCount"
            for key, name in leaves
        }
        for status, count in ordered
    ]


_SUMMARY_ATTRIBUTES = {
    "firstStart": "first_start",
    "lastFinish": "last_finish",
    "lastUpdate": "last_update",
    "durationMs": "duration_ms",
    "doneCount": "done_count",
    "progress": "progress",
}


def summary_row(summary: JobSummary | None, leaves: list[tuple[str, str]]) -> dict[str, Any]:
    shown = as_summary(summary)
    answer: dict[str, Any] = {}
    for key, name in leaves:
        if name == TYPENAME:
            answer[key] = "JobSummary"
            continue
        value = getattr(shown, _SUMMARY_ATTRIBUTES[name])
        if isinstance(value, datetime):
            value = format_datetime(value)
        elif name in ("durationMs", "doneCount") and value is not None:
            value = graphql_int(value)
        answer[key] = value
    return answer
