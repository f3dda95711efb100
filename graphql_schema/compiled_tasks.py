"""The compiled path's lists of tasks: each Task field a column over every task of the list, a walk's column one
list of tasks per task, built for all of them at once (one read per level of nesting, through the request's
Context, as the resolvers' DataLoaders batch them), history read for the whole list in one query."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, islice
from typing import Any

from graphql_schema.compiled_objects import objects
from graphql_schema.compiled_plan import TASK_FIELDS, Field, NotCompiled
from graphql_schema.compiled_rows import column, history_rows
from graphql_schema.conditions import json_etags
from graphql_schema.context import Context
from graphql_schema.cost_meter import metered
from graphql_schema.tasks import Selection, history_size
from models import Direction, HistoryPage, TaskDoc, TraversalTooLarge


async def task_objects(docs: list[TaskDoc], fields: tuple[Field, ...], context: Context) -> list[dict[str, Any]]:
    """Task objects of whole documents (readable ones, as every read gives them) a column at a time; a walk's
    column is one list of tasks per document, built for all documents at once (one read per level of nesting,
    as graphql-core's DataLoader batches them)."""
    columns: list[Iterable[Any]] = []
    pages_read: dict[tuple[int, str | None], list[HistoryPage]] = {}

    async def history_pages(field: Field) -> list[HistoryPage]:
        """Each document's history page for `field`'s arguments, read once for `history` and `historyTruncated`
        alike (the live view's details ask both)."""
        page = (history_size(field.arguments.get("last"), context.max_history), field.arguments.get("before"))
        if page not in pages_read:
            pages_read[page] = await context.read_histories([doc["_id"] for doc in docs], *page)
        return pages_read[page]

    for field in fields:
        if field.name == "historyTruncated":  # a leaf read as `history` reads its page
            columns.append([page.truncated for page in await history_pages(field)])
        elif field.fields is None:
            columns.append(
                await json_etags(docs, context)
                if field.name == "etag"
                else column(TASK_FIELDS.get(field.name, field.name))(docs)
            )
        elif field.name == "history":
            changes = [page.changes for page in await history_pages(field)]
            rows = iter(history_rows(list(chain.from_iterable(changes)), field.leaves()))  # one pass for all
            columns.append([list(islice(rows, len(each))) for each in changes])
        else:
            linked = await _linked(docs, field, context)
            built = iter(await task_objects(list(chain.from_iterable(linked)), field.fields, context))
            columns.append([list(islice(built, len(tasks))) for tasks in linked])
    return objects([field.key for field in fields], columns)


METERED_LINKS = ("nexts", "previous", "blockedBy")


async def _linked(docs: list[TaskDoc], field: Field, context: Context) -> list[list[TaskDoc]]:
    """The tasks a walk field leads to from each document, as graphql_schema.tasks resolves it."""
    arguments, store = field.arguments, context.store
    if field.name in METERED_LINKS and not arguments.get("transitive"):  # a task holds any number of links
        links: Direction = "nexts" if field.name == "nexts" else "previous"
        metered(field, [len(set(doc.get(links) or ())) for doc in docs])
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
