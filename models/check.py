"""`tracking-gateway check`: scan the stored graph for what other tools may have broken, and repair what is safe.

Found: one-sided links (b in a.nexts without a in b.previous, or the mirror), dangling ids (a link to a task
that does not exist), cycles, fields of the wrong type, and ids that are not int64. Repaired with `repair`:
one-sided links are completed (the link stays, both sides now say so) and dangling ids are removed, in
transactions. Cycles, wrong types and ids are reported only: fixing them needs a person's decision.

The scan holds every task's id and links in memory (about 200 bytes a task: 200 MB for a million).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bson.int64 import Int64
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from models.layout import LINK_FIELDS, Collection, field_problems, readable_task

EXAMPLES = 5
_REPAIR_BATCH = 500

ONE_SIDED = "one-sided links"
DANGLING = "dangling ids"
CYCLES = "tasks on cycles"
WRONG_TYPES = "fields of the wrong type"
NON_INT64_IDS = "non-int64 ids"

Transaction = Callable[[Callable[[AsyncClientSession], Awaitable[Any]]], Awaitable[Any]]


@dataclass
class Finding:
    count: int = 0
    examples: list[str] = field(default_factory=list)
    repaired: int = 0

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


@dataclass
class CheckReport:
    scanned: int = 0
    findings: dict[str, Finding] = field(
        default_factory=lambda: {name: Finding() for name in (ONE_SIDED, DANGLING, CYCLES, WRONG_TYPES, NON_INT64_IDS)}
    )

    @property
    def problems_left(self) -> int:
        return sum(finding.count - finding.repaired for finding in self.findings.values())

    def lines(self) -> list[str]:
        lines = [f"scanned {self.scanned} documents"]
        for name, finding in self.findings.items():
            line = f"{name}: {finding.count}"
            if finding.examples:
                line += f" (e.g. {'; '.join(finding.examples)})"
            if finding.repaired:
                line += f"; repaired {finding.repaired}"
            lines.append(line)
        return lines


@dataclass
class _Graph:
    nexts: dict[int, list[int]] = field(default_factory=dict)
    previous: dict[int, list[int]] = field(default_factory=dict)


async def check_graph(tasks: Collection, transaction: Transaction | None) -> CheckReport:
    """Scan `tasks`; with `transaction` (the store's), also repair one-sided links and dangling ids."""
    report = CheckReport()
    graph = _Graph()
    async for doc in tasks.find({}):
        report.scanned += 1
        _check_types(doc, report)
        readable = readable_task(doc)
        if readable is not None:
            graph.nexts[readable["_id"]] = readable["nexts"]
            graph.previous[readable["_id"]] = readable["previous"]
    additions, removals = _check_links(graph, report)
    _check_cycles(graph, report)
    if transaction is not None:
        await _repair(tasks, transaction, additions, removals, report)
    return report


def _check_types(doc: dict[str, Any], report: CheckReport) -> None:
    problems = field_problems(doc)
    ids = [name for name in problems if name == "_id" or name in LINK_FIELDS]
    others = [name for name in problems if name not in ids]
    if ids:
        report.findings[NON_INT64_IDS].add(f"{doc.get('_id')!r}: {', '.join(ids)}")
    if others:
        report.findings[WRONG_TYPES].add(f"{doc.get('_id')!r}: {', '.join(others)}")


Change = tuple[int, str, int]
"""(task id, link array, id): add it to, or remove it from, that array of that task."""


def _check_links(graph: _Graph, report: CheckReport) -> tuple[list[Change], list[Change]]:
    additions: list[Change] = []
    removals: list[Change] = []
    for source, mirror, arrays in (("nexts", "previous", graph.nexts), ("previous", "nexts", graph.previous)):
        other = graph.previous if source == "nexts" else graph.nexts
        for task_id, linked in arrays.items():
            for linked_id in linked:
                if linked_id not in other:
                    report.findings[DANGLING].add(f"{task_id}.{source} holds {linked_id}")
                    removals.append((task_id, source, linked_id))
                elif task_id not in other[linked_id]:
                    report.findings[ONE_SIDED].add(f"{task_id}.{source} holds {linked_id}, not the reverse")
                    additions.append((linked_id, mirror, task_id))
    return additions, removals


def _check_cycles(graph: _Graph, report: CheckReport) -> None:
    """Peel off tasks with no previous task, then tasks with no next task; what stays lies on a cycle or
    between two. Links are read from both arrays, so one-sided ones count."""
    successors: dict[int, set[int]] = defaultdict(set)
    for task_id, linked in graph.nexts.items():
        successors[task_id].update(i for i in linked if i in graph.nexts)
    for task_id, linked in graph.previous.items():
        for i in linked:
            if i in graph.nexts:
                successors[i].add(task_id)
    remaining = _peel(set(graph.nexts), successors)
    predecessors: dict[int, set[int]] = defaultdict(set)
    for task_id in remaining:
        for i in successors[task_id] & remaining:
            predecessors[i].add(task_id)
    remaining = _peel(remaining, predecessors)
    if remaining:
        finding = report.findings[CYCLES]
        finding.count = len(remaining)
        finding.examples.append(_one_cycle(min(remaining), successors, remaining))


def _peel(nodes: set[int], successors: dict[int, set[int]]) -> set[int]:
    """Kahn's algorithm: remove every node that no remaining node points to, repeatedly."""
    incoming = dict.fromkeys(nodes, 0)
    for node in nodes:
        for i in successors[node] & nodes:
            incoming[i] += 1
    ready = deque(node for node, count in incoming.items() if count == 0)
    remaining = set(nodes)
    while ready:
        node = ready.popleft()
        remaining.discard(node)
        for i in successors[node] & nodes:
            incoming[i] -= 1
            if incoming[i] == 0:
                ready.append(i)
    return remaining


def _one_cycle(start: int, successors: dict[int, set[int]], remaining: set[int]) -> str:
    path: list[int] = []
    position: dict[int, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = min(successors[node] & remaining)
    return " -> ".join(map(str, [*path[position[node] :], node]))


async def _repair(
    tasks: Collection,
    transaction: Transaction,
    additions: list[Change],
    removals: list[Change],
    report: CheckReport,
) -> None:
    for changes, operator, finding in ((additions, "$addToSet", ONE_SIDED), (removals, "$pull", DANGLING)):
        for batch in _batches(changes, _REPAIR_BATCH):
            updates = [UpdateOne({"_id": task_id}, {operator: {array: Int64(i)}}) for task_id, array, i in batch]

            async def work(session: AsyncClientSession, updates: list[UpdateOne] = updates) -> None:
                await tasks.bulk_write(updates, ordered=True, session=session)

            await transaction(work)
            report.findings[finding].repaired += len(batch)


def _batches(items: list[Change], size: int) -> Iterable[list[Change]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
