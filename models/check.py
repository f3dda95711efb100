"""`tracking-gateway check`: scan the stored graph for what other tools may have broken, and repair what is safe.

Found: one-sided links (b in a.nexts without a in b.previous, or the mirror), dangling ids (a link to a task
that does not exist), cycles, fields of the wrong type (dates outside years 1-9999 among them), strings that are
not UTF-8, link fields that are not arrays (absent and null among them), ids repeated in one link array, task ids
not stored as int64 (an int32, a double holding an integer: served, off the layout) and ids that are no task id
(-5, 0, 2.5, a string: a document served as no task, a link left out; models.check_ids). Repaired with
`repair`: absent or null link fields become [] (every reader took them for that), one-sided links are completed
(the link stays, both sides now say so), dangling ids are removed and repeated ids kept once, in transactions of
up to 500 link arrays. Each transaction reads the arrays again and changes only what still needs it, so the
counts of repairs are what changed. A repair MongoDB refuses, or an array a tool turned into something else
since the scan, is reported and the rest goes on. Cycles, wrong types, undecodable strings, link fields of
another type (a string, a number) and ids are reported only: fixing them needs a person's decision.

Whatever a document holds, the scan reports it and goes on: it never stops at one.

The scan holds every task's id and links in memory (about 200 bytes a task: 200 MB for a million).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.errors import BSONError
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from models.check_ids import NO_TASK_IDS, NOT_INT64_IDS, id_problems
from models.stored_task import (
    LINK_FIELDS,
    Collection,
    as_task_id,
    field_problems,
    has_repeated_ids,
    readable_task,
    value_problem,
)

EXAMPLES = 5
_REPAIR_BATCH = 500

ONE_SIDED = "one-sided links"
DANGLING = "dangling ids"
CYCLES = "tasks on cycles"
WRONG_TYPES = "fields of the wrong type"
NON_ARRAY_LINKS = "link fields that are not arrays"
REPEATED_IDS = "link arrays repeating an id"
UNDECODABLE = "strings that are not UTF-8"
NOT_REPAIRED = "repairs MongoDB refused"
_FINDINGS = (
    ONE_SIDED,
    DANGLING,
    REPEATED_IDS,
    CYCLES,
    WRONG_TYPES,
    UNDECODABLE,
    NON_ARRAY_LINKS,
    NOT_INT64_IDS,
    NO_TASK_IDS,
)
_STRICT_STRINGS: CodecOptions[dict[str, Any]] = CodecOptions(
    unicode_decode_error_handler="strict", datetime_conversion=DatetimeConversion.DATETIME_AUTO
)
"""The gateway's decoding but for strings: what fails under it is a string that is not UTF-8, nothing else."""

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
        default_factory=lambda: {name: Finding() for name in (*_FINDINGS, NOT_REPAIRED)}
    )

    @property
    def problems_left(self) -> int:
        return sum(finding.count - finding.repaired for name, finding in self.findings.items() if name != NOT_REPAIRED)

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
    unrepairable: set[tuple[int, str]] = field(default_factory=set)
    """(task id, link field) whose stored value is neither an array nor absent nor null: what it means is a
    person's decision, and MongoDB refuses $addToSet and $pull on it."""
    absent: list[tuple[int, str]] = field(default_factory=list)
    """(task id, link field) absent or null: no links, as every reader reads it; repaired as []."""
    repeating: list[tuple[int, str]] = field(default_factory=list)


async def check_graph(tasks: Collection, transaction: Transaction | None) -> CheckReport:
    """Scan `tasks`; with `transaction` (the store's), also repair one-sided links, dangling and repeated ids."""
    report = CheckReport()
    graph = _Graph()
    raw_tasks = tasks.with_options(codec_options=tasks.codec_options.with_options(document_class=RawBSONDocument))
    async for raw in raw_tasks.find({}):
        report.scanned += 1
        doc = bson.decode(raw.raw, codec_options=tasks.codec_options)
        _check_document(doc, raw.raw, report, graph)
    additions, removals = _check_links(graph, report)
    _check_cycles(graph, report)
    if transaction is not None:
        await _repair_absent_arrays(tasks, graph.absent, report)
        await _repair(tasks, transaction, additions, removals, report)
        await _repair_repeated_ids(tasks, graph.repeating, report)
    return report


def _check_document(doc: dict[str, Any], raw: bytes, report: CheckReport, graph: _Graph) -> None:
    _check_types(doc, report)
    if not _is_utf8(raw):
        report.findings[UNDECODABLE].add(f"{doc.get('_id')!r} (served with U+FFFD in their place)")
    readable = readable_task(doc)
    if readable is None:
        return
    task_id = readable["_id"]
    graph.nexts[task_id] = readable["nexts"]
    graph.previous[task_id] = readable["previous"]
    for name in LINK_FIELDS:
        stored = doc.get(name, _ABSENT)
        if stored is _ABSENT or stored is None:
            report.findings[NON_ARRAY_LINKS].add(f"{task_id}.{name} is {'absent' if stored is _ABSENT else 'null'}")
            graph.absent.append((task_id, name))
        elif not isinstance(stored, list):
            report.findings[NON_ARRAY_LINKS].add(f"{task_id}.{name} is {type(stored).__name__}")
            graph.unrepairable.add((task_id, name))
        elif has_repeated_ids(stored):
            report.findings[REPEATED_IDS].add(f"{task_id}.{name} repeats an id")
            graph.repeating.append((task_id, name))


def _is_utf8(raw: bytes) -> bool:
    try:
        bson.decode(raw, codec_options=_STRICT_STRINGS)
    except (BSONError, UnicodeDecodeError):
        return False
    return True


def _check_types(doc: dict[str, Any], report: CheckReport) -> None:
    # Ids (`_id`, link arrays) are their own findings (models.check_ids), and so is a link field that is no array.
    others = [name for name in field_problems(doc) if name != "_id" and name not in LINK_FIELDS]
    for finding, example in id_problems(doc).items():
        report.findings[finding].add(example)
    if others:
        described = (f"{name} {value_problem(doc[name])}" for name in others)
        report.findings[WRONG_TYPES].add(f"{doc.get('_id')!r}: {'; '.join(described)}")


_ABSENT = object()

Change = tuple[int, str, int]
"""(task id, link array, id): add it to, or remove it from, that array of that task."""


def _check_links(graph: _Graph, report: CheckReport) -> tuple[list[Change], list[Change]]:
    """What to add and remove to make every link two-sided and existing; never a change to an array that is
    no array (MongoDB would refuse it: such links are reported as they are)."""
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
                    if (linked_id, mirror) not in graph.unrepairable:
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
        for batch in _batches(_by_array(changes), _REPAIR_BATCH):
            await _repair_batch(tasks, transaction, batch, operator, report, finding)


ArrayChange = tuple[int, str, list[int]]
"""(task id, link array, ids): add them to, or remove them from, that array of that task."""


def _by_array(changes: list[Change]) -> list[ArrayChange]:
    """One change per array (a task holding 100,000 dangling ids is one update, not 100,000)."""
    grouped: dict[tuple[int, str], list[int]] = defaultdict(list)
    for task_id, array, i in changes:
        grouped[(task_id, array)].append(i)
    return [(task_id, array, ids) for (task_id, array), ids in grouped.items()]


async def _repair_batch(
    tasks: Collection,
    transaction: Transaction,
    batch: list[ArrayChange],
    operator: str,
    report: CheckReport,
    finding: str,
) -> None:
    """One transaction for the batch; if MongoDB refuses it, each array on its own, so that only the refused
    ones are left. Counts the ids that were really added or removed."""
    try:
        changed, gone = await _apply(tasks, transaction, batch, operator)
    except PyMongoError as error:
        if len(batch) == 1:
            task_id, array, ids = batch[0]
            report.findings[NOT_REPAIRED].add(f"{operator} of {len(ids)} ids on {task_id}.{array} ({error})")
            return
        for change in batch:
            await _repair_batch(tasks, transaction, [change], operator, report, finding)
        return
    report.findings[finding].repaired += changed
    for task_id, array in gone:
        report.findings[NOT_REPAIRED].add(f"{operator} on {task_id}.{array}: no longer an array (a tool changed it)")


async def _apply(
    tasks: Collection, transaction: Transaction, batch: list[ArrayChange], operator: str
) -> tuple[int, list[tuple[int, str]]]:
    """In one transaction: read the arrays as they are now, change only what still needs it, and return how
    many ids changed and the arrays that are no arrays any more (a tool rewrote them since the scan: left as
    they are)."""

    async def work(session: AsyncClientSession) -> tuple[int, list[tuple[int, str]]]:
        ids = list({task_id for task_id, _, _ in batch})
        projection = dict.fromkeys(LINK_FIELDS, 1)
        cursor = tasks.find({"_id": {"$in": ids}}, projection, session=session)
        now = {doc["_id"]: doc async for doc in cursor}
        updates: list[UpdateOne] = []
        changed = 0
        gone: list[tuple[int, str]] = []
        for task_id, array, linked in batch:
            stored = now.get(task_id, {}).get(array)
            if not isinstance(stored, list):
                if task_id in now:
                    gone.append((task_id, array))
                continue
            held = set(map(as_task_id, stored))  # a document or string in the array is no id (and unhashable)
            todo = [i for i in linked if (i in held) == (operator == "$pull")]
            if todo:
                changed += len(todo)
                selector = "$each" if operator == "$addToSet" else "$in"
                update = {operator: {array: {selector: list(map(Int64, todo))}}}
                updates.append(UpdateOne({"_id": task_id}, update))
        if updates:
            await tasks.bulk_write(updates, ordered=True, session=session)
        return changed, gone

    result: tuple[int, list[tuple[int, str]]] = await transaction(work)
    return result


async def _repair_absent_arrays(tasks: Collection, absent: list[tuple[int, str]], report: CheckReport) -> None:
    """Link fields absent or null become [] (what every reader took them for), each only if it still is."""
    for task_id, array in absent:
        try:
            result = await tasks.update_one({"_id": task_id, array: None}, {"$set": {array: []}})
        except PyMongoError as error:
            report.findings[NOT_REPAIRED].add(f"{task_id}.{array} set to [] ({error})")
            continue
        report.findings[NON_ARRAY_LINKS].repaired += result.modified_count


async def _repair_repeated_ids(tasks: Collection, repeating: list[tuple[int, str]], report: CheckReport) -> None:
    """Each repeating array kept once per id, in its order, in one update (atomic per document)."""
    for task_id, array in repeating:
        once = {
            "$reduce": {
                "input": f"${array}",
                "initialValue": [],
                "in": {
                    "$cond": [
                        {"$in": ["$$this", "$$value"]},
                        "$$value",
                        {"$concatArrays": ["$$value", ["$$this"]]},
                    ]
                },
            }
        }
        try:
            result = await tasks.update_one({"_id": task_id, array: {"$type": "array"}}, [{"$set": {array: once}}])
        except PyMongoError as error:
            report.findings[NOT_REPAIRED].add(f"{task_id}.{array} repeated ids ({error})")
            continue
        report.findings[REPEATED_IDS].repaired += result.modified_count


def _batches(items: list[ArrayChange], size: int) -> Iterable[list[ArrayChange]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
