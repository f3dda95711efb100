"""The compiled path: dashboard queries answered from one projected read per field, shaped like the answer.

graphql-core resolves and completes every field of every task one by one (about 60,000 calls for a 10,000-task
job's tasks and edges). For the operations `compiled_plan.plan` recognises, `CompiledQueries` instead reads
exactly the stored fields the selection names (one count and one projected find for `tasks`, `edges` and
their counts; the summary aggregation otherwise) and builds the `data` dict directly, in the order and with the
values graphql-core would give, after Strawberry has parsed and validated the document (so limits and
validation errors are unchanged). Whenever the answer would hold an error (a job over
TRACKING_GRAPHQL_MAX_TRAVERSAL, a cycle, an invalid id, MongoDB out of reach) it gives up and graphql-core
answers the operation as usual, errors included.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain, compress, repeat
from operator import itemgetter, methodcaller
from typing import Any

from graphql import DocumentNode, GraphQLError, parse
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_schema.compiled_plan import TYPENAME, JobField, Leaves, NotCompiled, RootField, plan
from graphql_schema.context import Context
from graphql_schema.jobs import as_summary
from graphql_schema.metrics import COMPILED
from models import JobSummary, TaskDoc, format_datetime, parse_task_id
from models.layout import DATE, FIELD_KINDS

PARSED_DOCUMENTS = 512
"""How many parsed documents are kept, by query text (least recently used go first)."""
INT32 = range(-(2**31), 2**31)
"""What GraphQL's Int holds (GraphQL spec §3.5.1); graphql-core refuses other values with an error."""

_parsed: OrderedDict[tuple[str, tuple[tuple[str, Any], ...]], DocumentNode] = OrderedDict()


def _cached_parse(query: str, options: dict[str, Any]) -> DocumentNode | None:
    """The document of `query`, parsed once per text and parse options; None when it does not parse (Strawberry
    parses it again and reports the error as it always does)."""
    key = (query, tuple(sorted(options.items())))
    document = _parsed.get(key)
    if document is not None:
        _parsed.move_to_end(key)
        return document
    try:
        document = parse(query, **options)
    except GraphQLError:
        return None
    _parsed[key] = document
    if len(_parsed) > PARSED_DOCUMENTS:
        _parsed.popitem(last=False)
    return document


class CompiledQueries(SchemaExtension):
    """Caches parsed documents and answers the operations graphql_schema.compiled_plan recognises (the last
    extension: it runs after every validation rule and bound)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = _cached_parse(context.query, dict(context.parse_options))
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if (
            isinstance(context, Context)
            and context.compiled
            and execution.graphql_document is not None
            and execution.operation_type is OperationType.QUERY
        ):
            data = await compiled_answer(
                execution.schema._schema,
                execution.graphql_document,
                execution.operation_name,
                execution.variables,
                context,
            )
            if data is not None:
                execution.result = GraphQLExecutionResult(data, None)
            COMPILED.labels("compiled" if data is not None else "generic").inc()
        yield


async def compiled_answer(
    schema: Any, document: DocumentNode, operation_name: str | None, variables: dict[str, Any] | None, context: Context
) -> dict[str, Any] | None:
    """The `data` of the operation, or None when graphql-core should answer it: not compiled, or any error (an
    answer with errors is graphql-core's to give, with its paths, codes and masking)."""
    try:
        fields = plan(schema, document, operation_name, variables)
        return {field.key: await _root_value(field, context) for field in fields}
    except Exception:  # NotCompiled, a GraphError or any other: graphql-core runs it again and reports it
        return None


async def _root_value(field: RootField, context: Context) -> Any:
    if field.name == TYPENAME:
        return "Query"
    if field.name == "doneStatuses":
        return sorted(context.store.done_statuses)
    if field.name == "task":
        found = await context.store.get_tasks([parse_task_id(field.argument, "id")])
        doc = next(iter(found.values()), None)
        return _tasks([doc], field.task)[0] if doc is not None else None
    return await _job(field.argument, field.job, context)


async def _job(job_id: str, fields: list[JobField], context: Context) -> dict[str, Any] | None:
    """Job's fields from one projected find (tasks, edges, and counts when the find holds the whole job), the
    summary aggregation (summary, or counts without tasks) and the critical path, each read only if selected."""
    store = context.store
    names = {field.name for field in fields}
    counted = bool(names & {"statusCounts", "taskCount"})
    docs: list[TaskDoc] = []
    summary: JobSummary | None = None
    if names & {"tasks", "edges"}:
        stored = {name for field in fields if field.name == "tasks" for _, name in field.leaves} - {"id", TYPENAME}
        stored |= {"nexts"} if "edges" in names else set()
        stored |= {"status"} if counted else set()
        job = await store.job_task_fields(job_id, stored, context.max_traversal)
        if not job.stored:
            return None
        docs = job.tasks
        summary = job.counts() if counted and "summary" not in names else None
    elif not await store.job_exists(job_id):
        return None
    if summary is None and (counted or "summary" in names):
        summary = (await store.job_summaries([job_id])).get(job_id)
    summary = summary or JobSummary()
    path = await store.critical_path(job_id, context.max_traversal) if "criticalPath" in names else []
    answer: dict[str, Any] = {}
    for field in fields:
        if field.name == "tasks":
            answer[field.key] = _tasks(docs, field.leaves)
        elif field.name == "criticalPath":
            answer[field.key] = _tasks(path, field.leaves)
        elif field.name == "edges":
            answer[field.key] = _edges(docs, field.leaves)
        elif field.name == "statusCounts":
            answer[field.key] = _status_counts(summary, field.leaves)
        elif field.name == "summary":
            answer[field.key] = _summary(summary, field.leaves)
        elif field.name == "taskCount":
            answer[field.key] = _int(summary.task_count)
        else:
            answer[field.key] = job_id if field.name == "id" else "Job"
    return answer


Column = Callable[[list[TaskDoc]], Iterable[Any]]
"""One field of every task of a list, in order."""


def _tasks(docs: list[TaskDoc], leaves: Leaves) -> list[dict[str, Any]]:
    """Task objects built a column at a time (map and zip run their loops in C: a comprehension calling a
    reader per field of each of 10,000 tasks cost more than reading them)."""
    columns = [_column(stored)(docs) for _, stored in leaves]
    return _objects([key for key, _ in leaves], columns)


def _objects(keys: list[str], columns: Sequence[Iterable[Any]]) -> list[dict[str, Any]]:
    """One dict per row of `columns`, with `keys` in this order."""
    return _row_builder(tuple(keys))(zip(*columns, strict=True))


RowBuilder = Callable[[Iterable[tuple[Any, ...]]], list[dict[str, Any]]]


@functools.lru_cache(maxsize=256)
def _row_builder(keys: tuple[str, ...]) -> RowBuilder:
    """`[{keys[0]: v0, keys[1]: v1, ...} for v0, v1, ... in rows]`, written out for these keys: a dict display
    builds each dict about four times faster than dict(zip(keys, row)). The keys are GraphQL response keys
    (letters, digits and underscores: GraphQL spec §2.1.9, Names), written as Python string literals (repr)."""
    if not all(key.isidentifier() and key.isascii() for key in keys):
        return lambda rows: [dict(zip(keys, row, strict=True)) for row in rows]
    names = [f"v{index}" for index in range(len(keys))]
    display = ", ".join(f"{key!r}: {name}" for key, name in zip(keys, names, strict=True))
    source = f"lambda rows: [{{{display}}} for {', '.join(names)}, in rows]"
    builder: RowBuilder = eval(source)  # noqa: S307 - built from validated names only (see above)
    return builder


def _column(stored: str) -> Column:
    """How graphql-core would serve a Task field (graphql_schema.fields.read_field and the scalars) from
    documents as readers see them: models.layout.readable_task leaves every known field of its declared kind or
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
        return lambda docs: map(_date, map(methodcaller("get", stored), docs))
    return lambda docs: map(methodcaller("get", stored), docs)


def _task_ids(docs: list[TaskDoc]) -> Iterable[str]:
    return map(str, map(itemgetter("_id"), docs))


def _date(value: datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


def _int(value: object) -> int:
    if type(value) is not int or value not in INT32:
        raise NotCompiled("not a GraphQL Int")
    return value


def _edges(docs: list[TaskDoc], leaves: Leaves) -> list[dict[str, Any]]:
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
    return _objects([key for key, _ in leaves], columns)


def _status_counts(summary: JobSummary, leaves: Leaves) -> list[dict[str, Any]]:
    """Job.statusCounts: null first, then by status."""
    ordered = sorted(summary.status_counts.items(), key=lambda item: (item[0] is not None, item[0] or ""))
    return [
        {key: status if name == "status" else _int(count) if name == "count" else "StatusCount" for key, name in leaves}
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


def _summary(summary: JobSummary, leaves: Leaves) -> dict[str, Any]:
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
            value = _int(value)
        answer[key] = value
    return answer
