"""The compiled path: dashboard queries answered from the reads their selection needs, shaped like the answer.

graphql-core resolves and completes every field of every task one by one (about 60,000 calls for a 10,000-task
job's tasks and edges). For the operations `compiled_plan.plan` recognises, `CompiledQueries` instead reads
what the selection names (one projected find of at most TRACKING_GRAPHQL_MAX_TRAVERSAL + 1 documents for
`tasks`, `edges` and their counts; the summary aggregation otherwise; one read per level of walks, as the
DataLoaders batch them) and builds the `data` dict directly, a column at a time, in the order and with the
values graphql-core would give, after Strawberry has parsed and validated the document (so limits and
validation errors are unchanged; both are remembered by query text). Its reads are the resolvers' own
(graphql_schema.context's DataLoaders, the store's methods): one read model. Whenever the answer would hold an
error (a job over a bound, a page too large, a bad cursor, a cycle, an invalid id, MongoDB out of reach) it
answers "not compiled" and graphql-core answers the operation as usual, errors included. Any other exception
is a fault of this path: answered as an internal error and logged, never run again by graphql-core.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain, compress, islice, repeat
from operator import itemgetter
from typing import Any

from graphql import DocumentNode, GraphQLError
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_schema.compiled_plan import TASK_FIELDS, TYPENAME, Field, NotCompiled, plan
from graphql_schema.context import Context
from graphql_schema.cursors import job_cursor, read_job_cursor, read_task_cursor, task_cursor
from graphql_schema.errors import INTERNAL_MESSAGE
from graphql_schema.jobs import as_summary, levels_bound, stage_filter
from graphql_schema.metrics import COMPILED
from graphql_schema.rules import REQUESTED_OPERATION
from graphql_schema.tasks import Selection, graphql_field_names
from models import (
    Direction,
    GraphError,
    JobFilter,
    JobPosition,
    JobSummary,
    StorageUnavailable,
    TaskChange,
    TaskDoc,
    TaskEventKind,
    TraversalTooLarge,
    etag_of,
    format_datetime,
    parse_task_id,
)
from models.deadline import KNOWN_UNAVAILABLE
from models.stored_task import DATE, FIELD_KINDS
from models.tracing import set_current

PARSED_DOCUMENTS = 512
"""How many parsed documents (Strawberry's ParserCache, by query text and parse options), and how many validated
ones, are kept (least recently used go first)."""
INT32 = range(-(2**31), 2**31)
"""What GraphQL's Int holds (GraphQL spec §3.5.1); graphql-core refuses other values with an error."""

_validated: OrderedDict[tuple[object, str | None, str | None], None] = OrderedDict()
"""Documents that passed validation: (schema, query text, requested operation name), least recently used first.
Strawberry's ValidationCache keys on the validation rules, which its limiters build anew for every request (so
it would never hit), and not on the requested operation name, which OneOperationOrAName reads."""
log = logging.getLogger("gateway.graphql")


class CachedParsing(ParserCache):
    """Strawberry's parser cache, leaving a document that does not parse to Strawberry, which parses it again
    and reports the error as it always does."""

    def __init__(self) -> None:
        super().__init__(maxsize=PARSED_DOCUMENTS)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        yield


class CompiledQueries(SchemaExtension):
    """Answers the operations graphql_schema.compiled_plan recognises (the last extension: it runs after every
    validation rule and bound); remembers validated documents."""

    def on_validate(self) -> Iterator[None]:
        """A document validated once (with the same schema, bounds and requested operation) is not validated
        again: validation depends on nothing else. Only documents without errors are remembered."""
        execution = self.execution_context
        key = (execution.schema, execution.query, REQUESTED_OPERATION.get())
        if execution.query and execution.pre_execution_errors is None and key in _validated:
            _validated.move_to_end(key)
            execution.pre_execution_errors = []  # Strawberry's own validation runs only when this is None
            yield
            return
        yield
        if execution.query and execution.pre_execution_errors == []:
            _validated[key] = None
            if len(_validated) > PARSED_DOCUMENTS:
                _validated.popitem(last=False)

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if (
            isinstance(context, Context)
            and context.compiled
            and execution.graphql_document is not None
            and execution.operation_type is OperationType.QUERY
        ):
            unreachable = None
            path = "compiled"
            try:
                data = await compiled_answer(
                    execution.schema._schema,
                    execution.graphql_document,
                    execution.operation_name,
                    execution.variables,
                    context,
                )
            except StorageUnavailable:  # graphql-core reports it, its reads failing at once (no second deadline)
                data, unreachable = None, KNOWN_UNAVAILABLE.set(True)
            except Exception:  # a fault of the compiled path: an error, never the same work done twice
                log.exception("compiled GraphQL path failed")
                execution.result = GraphQLExecutionResult(None, [compiled_path_error()])
                data, path = None, "failed"
            if data is not None:
                execution.result = GraphQLExecutionResult(data, None)
            elif path != "failed":
                path = "generic"
            COMPILED.labels(path).inc()
            set_current({"tracking.graphql.path": path})
            try:
                yield
            finally:
                if unreachable is not None:
                    KNOWN_UNAVAILABLE.reset(unreachable)
            return
        yield


async def compiled_answer(
    schema: Any, document: DocumentNode, operation_name: str | None, variables: dict[str, Any] | None, context: Context
) -> dict[str, Any] | None:
    """The `data` of the operation, or None when graphql-core should answer it, the two planned cases: not
    compiled (NotCompiled, from the plan or a value GraphQL would refuse), or an error the answer must show
    (a GraphError: a job over a bound, a cycle; a GraphQLError: an argument refused, say a bad cursor);
    graphql-core gives it with its path and code. StorageUnavailable is raised: MongoDB out of reach is
    reported without waiting for it again. Any other exception is a fault of this path and is raised too."""
    try:
        fields = plan(schema, document, operation_name, variables)
        return {field.key: await _root_value(field, context) for field in fields}
    except StorageUnavailable:
        raise
    except (NotCompiled, GraphError, GraphQLError):  # GraphQLError: an argument refused (say, a bad cursor)
        return None


def compiled_path_error() -> GraphQLError:
    """What a fault of the compiled path answers (the fault itself goes to the log)."""
    return GraphQLError(INTERNAL_MESSAGE, extensions={"code": "INTERNAL_SERVER_ERROR"})


async def _root_value(field: Field, context: Context) -> Any:
    if field.name == TYPENAME:
        return "Query"
    if field.name == "doneStatuses":
        return sorted(context.store.done_statuses)
    if field.name == "eventCursor":
        return await context.store.event_cursor(field.arguments.get("jobId"))
    if field.name == "task":
        found = await context.store.get_tasks([parse_task_id(field.arguments["id"], "id")])
        doc = next(iter(found.values()), None)
        return (await _task_objects([doc], _fields(field), context))[0] if doc is not None else None
    if field.name == "jobs":
        return await _jobs(field, context)
    return await _job(field.arguments["id"], _fields(field), context)


def _fields(field: Field) -> tuple[Field, ...]:
    if field.fields is None:
        raise NotCompiled(f"{field.name}: a leaf")
    return field.fields


async def _job(job_id: str, fields: tuple[Field, ...], context: Context) -> dict[str, Any] | None:
    """Job's fields from one projected find (tasks, edges, and counts when the find holds the whole job), the
    summary aggregation (summary, or counts without tasks), each read only if selected, then the fields that
    read on their own (critical path, a page of tasks, levels)."""
    store = context.store
    names = {field.name for field in fields}
    counted = bool(names & {"statusCounts", "taskCount"})
    docs: list[TaskDoc] = []
    summary: JobSummary | None = None
    whole_job = [field for field in fields if field.name in ("tasks", "roots")]
    if whole_job or "edges" in names:
        stored = _stored_fields(whole_job)
        if stored is not None:
            stored |= ({"nexts"} if "edges" in names else set()) | ({"status"} if counted else set())
        job = await store.job_task_fields(job_id, stored, context.max_traversal)
        if not job.stored:
            return None
        docs = job.tasks
        if stored is None:  # whole documents: their walks need no second read of them (graphql_schema.jobs)
            context.remember(docs)
        summary = job.counts() if counted and "summary" not in names else None
    elif not await store.job_exists(job_id):
        return None
    if summary is None and (counted or "summary" in names):
        summary = (await store.job_summaries([job_id])).get(job_id)
    answer: dict[str, Any] = {}
    for field in fields:
        if field.name in ("tasks", "roots"):
            answer[field.key] = await _task_objects(_kept(docs, field), _fields(field), context)
        elif field.name == "edges":
            answer[field.key] = _edges(docs, field.leaves())
        elif field.name == "criticalPath":
            path = await store.critical_path(job_id, context.max_traversal)
            answer[field.key] = await _task_objects(path, _fields(field), context)
        elif field.name == "taskPage":
            answer[field.key] = await _task_page(job_id, field, context)
        elif field.name == "levels":
            answer[field.key] = await _levels(job_id, _fields(field), context)
        else:
            answer[field.key] = _job_count(job_id, summary or JobSummary(), field)
    return answer


def _stored_fields(whole_job: list[Field]) -> set[str] | None:
    """The stored fields Job.tasks and Job.roots fields need (their filters' and scalars'), or None when one
    needs whole documents (a walk, history or etag)."""
    needed: set[str] = set()
    for field in whole_job:
        arguments = field.arguments
        needed |= {"root"} if field.name == "roots" or arguments.get("root") is not None else set()
        needed |= {"status"} if arguments.get("status") or arguments.get("statusNot") else set()
        needed |= {"type"} if arguments.get("type") is not None else set()
        for leaf in _fields(field):
            if leaf.name in ("id", TYPENAME):
                continue
            if leaf.fields is not None or leaf.name not in TASK_FIELDS:
                return None
            needed.add(TASK_FIELDS[leaf.name])
    return needed


def _kept(docs: list[TaskDoc], field: Field) -> list[TaskDoc]:
    """The tasks of the job Job.tasks (with its filters) or Job.roots keeps, as graphql_schema.jobs does."""
    arguments = field.arguments
    root = True if field.name == "roots" else arguments.get("root")
    selection = Selection(arguments.get("status"), arguments.get("statusNot"), arguments.get("type"))
    if root is None and selection == Selection():
        return docs
    return [doc for doc in docs if (root is None or doc.get("root") is root) and selection.keeps(doc)]


def _job_count(job_id: str, summary: JobSummary, field: Field) -> Any:
    """A Job field served from its summary: id, taskCount, statusCounts, summary, __typename."""
    if field.name == "statusCounts":
        return _status_counts(summary.status_counts, field.leaves())
    if field.name == "summary":
        return _summary(summary, field.leaves())
    if field.name == "taskCount":
        return _int(summary.task_count)
    return job_id if field.name == "id" else "Job"


async def _jobs(field: Field, context: Context) -> dict[str, Any]:
    """Query.jobs: one listing, then the counts of every job of the page in one aggregation (as graphql-core's
    DataLoader batches them)."""
    arguments = field.arguments
    first = _page_size(arguments["first"], context)
    after = arguments.get("after")
    position, snapshot = read_job_cursor(after) if after is not None else (None, None)
    wanted = arguments.get("filter") or {}  # the JobFilter input object as graphql-core coerces it: by GraphQL names
    job_filter = JobFilter(
        wanted.get("idPrefix"), wanted.get("status"), wanted.get("updatedAfter"), wanted.get("updatedBefore")
    )
    page = await context.store.list_jobs(first, position, job_filter, snapshot)
    summaries: dict[str, JobSummary] = {}
    counted = any(leaf.name not in ("id", TYPENAME) for node in _nodes(field) for leaf in _fields(node))
    if page.jobs and counted:
        summaries = await context.store.job_summaries([job.job_id for job in page.jobs])
    cursors = [job_cursor(JobPosition(job.last_update, job.job_id), page.snapshot) for job in page.jobs]

    def job_edge(edge: Field, index: int) -> dict[str, Any]:
        job_id = page.jobs[index].job_id
        answer: dict[str, Any] = {}
        for child in _fields(edge):
            if child.name == "node":
                summary = summaries.get(job_id) or JobSummary()
                answer[child.key] = {leaf.key: _job_count(job_id, summary, leaf) for leaf in _fields(child)}
            else:
                answer[child.key] = cursors[index] if child.name == "cursor" else "JobEdge"
        return answer

    return _connection(field, len(page.jobs), job_edge, page.has_next, cursors[-1] if cursors else None, "Job")


async def _task_page(job_id: str, field: Field, context: Context) -> dict[str, Any]:
    """Job.taskPage: one page read, its tasks then built as any list of tasks."""
    arguments = field.arguments
    after = arguments.get("after")
    after_id = read_task_cursor(after) if after is not None else None
    size = _page_size(arguments["first"], context)
    depth = arguments.get("depth")
    if depth is not None and depth < 0:
        raise NotCompiled("depth below 0: graphql-core gives the error")
    docs, more = await context.store.task_page(
        job_id,
        size,
        after_id,
        arguments.get("status"),
        arguments.get("statusNot"),
        arguments.get("type"),
        arguments.get("name"),
        stage_filter(depth, context.max_traversal),
    )
    cursors = [task_cursor(doc["_id"]) for doc in docs]
    nodes = {id(node): await _task_objects(docs, _fields(node), context) for node in _nodes(field)}

    def task_edge(edge: Field, index: int) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for child in _fields(edge):
            if child.name == "node":
                answer[child.key] = nodes[id(child)][index]
            else:
                answer[child.key] = cursors[index] if child.name == "cursor" else "TaskEdge"
        return answer

    return _connection(field, len(docs), task_edge, more, cursors[-1] if cursors else None, "Task")


def _nodes(connection: Field) -> list[Field]:
    """Every `node` selected in every `edges` of a connection (aliases may select several)."""
    return [
        node for edges in _fields(connection) if edges.name == "edges" for node in _fields(edges) if node.name == "node"
    ]


def _page_size(first: object, context: Context) -> int:
    """`first` when within 1 and TRACKING_GRAPHQL_MAX_PAGE; graphql-core gives the error otherwise."""
    if type(first) is not int or not 1 <= first <= context.max_page:
        raise NotCompiled("a page size out of bounds")
    return first


def _connection(
    field: Field, count: int, edge: Callable[[Field, int], dict[str, Any]], more: bool, end: str | None, of: str
) -> dict[str, Any]:
    """A Relay-style connection of `count` edges (`edge` builds one) and its pageInfo."""
    answer: dict[str, Any] = {}
    for child in _fields(field):
        if child.name == "edges":
            answer[child.key] = [edge(child, index) for index in range(count)]
        elif child.name == "pageInfo":
            info = {"hasNextPage": more, "endCursor": end, TYPENAME: "PageInfo"}
            answer[child.key] = {key: info[name] for key, name in child.leaves()}
        else:
            answer[child.key] = f"{of}Connection"
    return answer


_LEVEL_NUMBERS = {"depth": "depth", "count": "count", "blockedCount": "blocked_count"}
"""JobLevel's integer fields: GraphQL name -> models.jobs.JobLevel attribute."""


async def _levels(job_id: str, fields: tuple[Field, ...], context: Context) -> list[dict[str, Any]]:
    levels = await context.store.job_levels(job_id, levels_bound(context.max_traversal))
    answer = []
    for level in levels:
        shown: dict[str, Any] = {}
        for field in fields:
            if field.name == "statusCounts":
                shown[field.key] = _status_counts(level.status_counts, field.leaves())
            elif field.name in ("depth", "count", "blockedCount"):
                shown[field.key] = _int(getattr(level, _LEVEL_NUMBERS[field.name]))
            else:
                shown[field.key] = "JobLevel"
        answer.append(shown)
    return answer


# ---- tasks ------------------------------------------------------------------------------------------------------


async def _task_objects(docs: list[TaskDoc], fields: tuple[Field, ...], context: Context) -> list[dict[str, Any]]:
    """Task objects of whole documents (readable ones, as every read gives them) a column at a time; a walk's
    column is one list of tasks per document, built for all documents at once (one read per level of nesting,
    as graphql-core's DataLoader batches them)."""
    columns: list[Iterable[Any]] = []
    for field in fields:
        if field.fields is None:
            columns.append(
                map(etag_of, docs) if field.name == "etag" else _column(TASK_FIELDS.get(field.name, field.name))(docs)
            )
        elif field.name == "history":
            changes = await context.read_histories([doc["_id"] for doc in docs])
            columns.append([_history(each, field.leaves()) for each in changes])
        else:
            linked = await _linked(docs, field, context)
            built = iter(await _task_objects(list(chain.from_iterable(linked)), field.fields, context))
            columns.append([list(islice(built, len(tasks))) for tasks in linked])
    return _objects([field.key for field in fields], columns)


async def _linked(docs: list[TaskDoc], field: Field, context: Context) -> list[list[TaskDoc]]:
    """The tasks a walk field leads to from each document, as graphql_schema.tasks resolves it."""
    arguments, store = field.arguments, context.store
    selection = Selection(arguments.get("status"), arguments.get("statusNot"), arguments.get("type"))
    if field.name in ("nexts", "previous"):
        return await _neighbours(docs, "nexts" if field.name == "nexts" else "previous", selection, context)
    if field.name == "blockedBy":
        not_done = Selection(status_not=list(store.done_statuses))
        if not arguments.get("transitive"):
            return await _neighbours(docs, "previous", not_done, context)
        return await _each(docs, "previous", None, not_done, context)
    max_depth = arguments.get("maxDepth")
    if max_depth is not None and max_depth < 0:
        raise NotCompiled("maxDepth below 0: graphql-core gives the error")
    direction: Direction = "nexts" if field.name == "descendants" else "previous"
    return await _each(docs, direction, max_depth, selection, context)


async def _neighbours(
    docs: list[TaskDoc], direction: Direction, selection: Selection, context: Context
) -> list[list[TaskDoc]]:
    """Each document's direct `direction` tasks by id, kept by `selection`: one read for all of them."""
    ids = [sorted(set(doc.get(direction) or ())) for doc in docs]
    wanted = sorted(set(chain.from_iterable(ids)))
    cached = context.cached_tasks(wanted)  # read already in this request (a whole job, a walk)
    if cached is not None:
        found = {task_id: doc for task_id, doc in zip(wanted, cached, strict=True) if doc is not None}
    else:
        found = await context.store.get_tasks(wanted) if wanted else {}
        context.remember(list(found.values()))
    return [[found[i] for i in linked if i in found and selection.keeps(found[i])] for linked in ids]


async def _each(
    docs: list[TaskDoc], direction: Direction, max_depth: int | None, selection: Selection, context: Context
) -> list[list[TaskDoc]]:
    """Every task reachable from each document, kept by `selection`: the walks of all documents together, as
    the resolvers ask for them (Context.walks)."""
    kept = []
    for found in await context.walk_from_each(docs, direction, max_depth):
        if isinstance(found, TraversalTooLarge):
            raise found  # graphql-core answers it, with its path
        kept.append([task for task in found if selection.keeps(task)])
    return kept


def _history(changes: list[TaskChange], leaves: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Task.history as graphql_schema.tasks.as_changes shows it."""
    columns: list[Iterable[Any]] = []
    for _, name in leaves:
        if name == "at":
            columns.append([format_datetime(change.at) for change in changes])
        elif name == "kind":
            columns.append([TaskEventKind(change.kind).name for change in changes])
        elif name == "changedFields":
            columns.append([graphql_field_names(change.changed_fields) for change in changes])
        elif name in ("cursor", "status"):
            columns.append([getattr(change, name) for change in changes])
        else:
            columns.append(repeat("TaskChange", len(changes)))
    return _objects([key for key, _ in leaves], columns)


Column = Callable[[list[TaskDoc]], Iterable[Any]]
"""One field of every task of a list, in order."""


def _objects(keys: list[str], columns: Sequence[Iterable[Any]]) -> list[dict[str, Any]]:
    """One dict per row of `columns`, with `keys` in this order."""
    return list(map(dict, map(zip, repeat(keys), zip(*columns, strict=True))))


def _column(stored: str) -> Column:
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
        return lambda docs: map(_date, map(dict.get, docs, repeat(stored)))
    return lambda docs: map(dict.get, docs, repeat(stored))


def _task_ids(docs: list[TaskDoc]) -> Iterable[str]:
    return map(str, map(itemgetter("_id"), docs))


def _date(value: datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


def _int(value: object) -> int:
    if type(value) is not int or value not in INT32:
        raise NotCompiled("not a GraphQL Int")
    return value


def _edges(docs: list[TaskDoc], leaves: list[tuple[str, str]]) -> list[dict[str, Any]]:
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


def _status_counts(counts: dict[str | None, int], leaves: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Status counts as graphql_schema.jobs.ordered_counts gives them: null first, then by status."""
    ordered = sorted(counts.items(), key=lambda item: (item[0] is not None, item[0] or ""))
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


def _summary(summary: JobSummary | None, leaves: list[tuple[str, str]]) -> dict[str, Any]:
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
