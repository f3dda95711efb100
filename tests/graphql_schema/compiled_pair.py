"""What the tests of the compiled GraphQL path share: the job both gateways answer (stored as tools and the history
writer store it), the live view's queries, and `same_answer`, which asks both gateways and compares."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from bson.int64 import Int64
from graphql import OperationDefinitionNode, OperationType, parse
from prometheus_client import REGISTRY

from tests.helpers import live_view_documents

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
"""The tasks' and their changes' times: relative to now, for the history's retention (TRACKING_HISTORY_DAYS, a
TTL index) would delete changes dated further back while the test reads them, one path seeing them and not the
other."""
JOB = "compiled-job"
BOUND = 40
EQUIVALENCE_BUDGET = 10_000_000
"""Generated walks two levels deep, their tasks with pages of 50 changes, cost past the default budget's floor
(100,000) on a traversal bound of 40; the equivalence of the two paths is what these tests judge."""


def ui_queries() -> dict[str, str]:
    """Every query the live view sends (ui/queries.js, as node reads it), by operation name: whatever queries
    the page holds now are tested."""
    queries = {}
    for document in live_view_documents().values():
        [operation] = parse(document).definitions
        assert isinstance(operation, OperationDefinitionNode) and operation.name, document
        if operation.operation is OperationType.QUERY:
            queries[operation.name.value] = document
    return queries


UI_QUERIES = ui_queries()


def ui_query(name: str) -> str:
    """A query of the live view by operation name."""
    return UI_QUERIES[name]


def stored_task(task_id: int, **fields: Any) -> dict[str, Any]:
    level = task_id % 5
    return {
        "_id": Int64(task_id),
        "job-id": JOB,
        "status": ["DONE", "RUNNING", "FAILED", "READY", "DONE"][level],
        "name": f"step ü {task_id}",  # not ASCII: the encoder writes it the same way on both paths
        "type": "task",
        "root": task_id <= 2,
        "number-of-retries": task_id,
        "creation-timestamp": T0,
        "update-timestamp": T0 + timedelta(seconds=task_id),
        "start-time": T0 + timedelta(minutes=task_id),
        "finish-time": T0 + timedelta(minutes=task_id + level + 1),
        "nexts": [Int64(n) for n in (task_id + 1, task_id + 2) if n <= 30],
        "previous": [Int64(p) for p in (task_id - 1, task_id - 2) if p >= 1],
        **fields,
    }


def history_entries() -> list[dict[str, Any]]:
    """Recorded changes of some of the job's tasks (none for the others), as the history writer stores them."""
    entries = []
    for task_id in range(1, 31, 3):
        for change in range(task_id % 4):
            entries.append(
                {
                    "_id": f"{task_id:04d}{change:04d}",
                    "task": Int64(task_id),
                    "job": JOB,
                    "kind": "CREATED" if change == 0 else "UPDATED",
                    "fields": ["status", "job-id"] if change else [],
                    "at": T0 + timedelta(seconds=task_id * 10 + change),
                    **({"status": "RUNNING"} if change == 1 else {}),
                }
            )
    return entries


def path_count(path: str) -> float:
    """How many queries the compiled path answered (`compiled`), left to graphql-core (`generic`) or failed on."""
    return REGISTRY.get_sample_value("tracking_graphql_compiled_total", {"path": path}) or 0.0


def compiled_count() -> float:
    return path_count("compiled")


async def same_answer(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], query: str, variables: dict[str, Any] | None = None
) -> tuple[bytes, bool]:
    """The body both gateways give (asserted equal, with the status and media type), and whether the compiled
    path answered it."""
    body = {"query": query, "variables": variables or {}}
    before, faults = compiled_count(), path_count("failed")
    compiled = await clients[0].post("/graphql", json=body)
    was_compiled = compiled_count() > before
    assert path_count("failed") == faults, f"the compiled path failed on {query}: see the log"
    generic = await clients[1].post("/graphql", json=body)
    assert compiled.status_code == generic.status_code
    assert compiled.headers["content-type"] == generic.headers["content-type"]
    assert comparable(compiled.content) == comparable(generic.content), query
    return compiled.content, was_compiled


def comparable(body: bytes) -> bytes:
    """The body with each eventCursor (a point in the change stream, later at each read) as one placeholder."""
    cursors = re.findall(rb'"eventCursor":"([0-9A-Fa-f]+)"', body)
    assert all(cursors), body
    return re.sub(rb'"eventCursor":"[0-9A-Fa-f]+"', b'"eventCursor":"<cursor>"', body)


def ui_variables(query: str, filled: bool) -> dict[str, Any]:
    """Values for the variables a query declares, by type: the required ones, and with `filled` the optional
    ones too (filters that keep some tasks; never a cursor, which only an answer gives)."""
    values: dict[str, Any] = {}
    for name, declared in re.findall(r"\$(\w+)\s*:\s*([\w\[\]!]+)", query.split("{", 1)[0]):
        required = declared.endswith("!")
        kind = declared.rstrip("!")
        if not (required or filled) or name == "after":
            continue
        if kind == "ID":
            values[name] = "3"
        elif kind == "String":
            values[name] = JOB if required or name in ("job", "jobId") else "1"
        elif kind == "Int":
            values[name] = 2
        elif kind == "Boolean":
            values[name] = True
        elif kind == "JobFilter":
            values[name] = {"idPrefix": "compiled", "status": ["DONE"]}
        elif kind.startswith("["):
            values[name] = ["DONE", "FAILED"]
    return values
