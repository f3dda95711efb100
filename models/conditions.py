"""Entity tags of tasks and the evaluation of conditional requests (RFC 9110 sections 8.8.3, 13.1 and 13.2); the
grammar of the condition fields is HTTP's, read by the front ends (web.etags).

A task's version is computed from the task as the gateway reads it: the BLAKE2b hash (16 bytes, hex) of the BSON
encoding of its readable document (models.stored_task.readable_task), and of the next tasks a navigable task's
representation shows in full (`shown_next_ids`). Every change of a field readers see, link changes and writes by
ops tools included, changes it; nothing needs to maintain it. Each media type the task is served in
has its own strong ETag, the version followed by that media type's suffix (REPRESENTATION_SUFFIXES): a strong
validator names one representation (section 8.8.3), and JSON and XML answers differ.

`evaluate` is RFC 9110 section 13.2.2's order of evaluation, one pure function both reads and writes use. A
conditional write runs in one transaction that reads the task, evaluates its conditions, then writes it: a
concurrent change is either seen (PreconditionFailed) or makes this transaction's write conflict, and the driver
runs it again, when it is seen. Writes without a condition take the path they always took.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

import bson
from pymongo.asynchronous.client_session import AsyncClientSession

from models.errors import PreconditionFailed, TaskNotFound
from models.stored_task import Collection as MongoCollection
from models.stored_task import TaskDoc, readable_task
from models.task import NAVIGABLE_TYPES

ETAG_DIGEST_BYTES = 16
JSON_MEDIA_TYPE = "application/json"
REPRESENTATION_SUFFIXES: Mapping[str, str] = {JSON_MEDIA_TYPE: "", "application/xml": "-xml", "text/xml": "-text-xml"}
"""The media types a task is served in, each with the suffix that makes its ETag its own. JSON keeps the bare
version, the ETag every caller (and GraphQL's Task.etag) always had; application/xml and text/xml carry the same
bytes under different Content-Types, so a cache holding both tells them apart on a 304 by their tags."""


def digest_of(*parts: bytes | memoryview) -> str:
    """The hash every entity tag is made of: BLAKE2b (ETAG_DIGEST_BYTES) of the parts, in hex."""
    digest = hashlib.blake2b(digest_size=ETAG_DIGEST_BYTES)
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def shown_next_ids(doc: TaskDoc) -> list[int]:
    """The next tasks a task's representation shows in full, in the order shown: a navigable task's direct next
    tasks (NAVIGABLE_TYPES), by id; none for any other."""
    if doc.get("type") not in NAVIGABLE_TYPES:
        return []
    return sorted(i for i in doc.get("nexts") or () if isinstance(i, int))


Shown = Mapping[int, TaskDoc | None]
"""The tasks a representation shows beside the task itself (`shown_next_ids`), readable, by id; an id missing or
None is a next task that does not exist, which no representation shows."""


def version_of(doc: TaskDoc, shown: Shown) -> str:
    """The version of a task as read (a readable document) with the next tasks its representation shows (a
    navigable task's: a change of one changes what a reader gets): 32 hex digits, the same for every
    representation."""
    parts = [bson.encode(doc)]
    for next_id in shown_next_ids(doc):
        linked = shown.get(next_id)
        if linked is not None:
            parts.append(bson.encode(linked))
    return digest_of(*parts)


def etag_of(doc: TaskDoc, media_type: str, shown: Shown) -> str:
    """The strong ETag of the task's representation in `media_type` (one of REPRESENTATION_SUFFIXES)."""
    return etag_of_version(version_of(doc, shown), media_type)


def etag_of_version(version: str, media_type: str) -> str:
    """`"<32 hex digits><suffix>"`: the strong ETag of a task's `version` in `media_type`."""
    return f'"{version}{REPRESENTATION_SUFFIXES[media_type]}"'


def etags_of(doc: TaskDoc, shown: Shown) -> tuple[str, ...]:
    """The current ETag of every representation of the task: what a write's conditions are compared with, since
    a caller may read one format and write in another."""
    version = version_of(doc, shown)
    return tuple(etag_of_version(version, media_type) for media_type in REPRESENTATION_SUFFIXES)


class EntityTagCondition(Protocol):
    """The value of an If-Match or If-None-Match condition as `evaluate` compares it: `*` (any current version)
    or a list of entity tags. The front ends build one from the field's grammar (web.etags); the store only
    compares."""

    @property
    def any_version(self) -> bool: ...

    def matches_strongly(self, current: str) -> bool:
        """If-Match (RFC 9110 section 13.1.1): strong comparison, so a weak tag never matches."""
        ...

    def matches_weakly(self, current: str) -> bool:
        """If-None-Match (RFC 9110 section 13.1.2): weak comparison, the `W/` prefix ignored."""
        ...


@dataclass(frozen=True)
class Preconditions:
    """The If-Match and If-None-Match conditions of one request, either or both absent (None)."""

    if_match: EntityTagCondition | None = None
    if_none_match: EntityTagCondition | None = None


class Outcome(enum.Enum):
    """What RFC 9110 section 13.2.2 says to do with a request after evaluating its preconditions."""

    PERFORM = "perform"
    NOT_MODIFIED = "not modified"  # 304, for GET and HEAD
    IF_MATCH_FAILED = "If-Match"  # 412
    IF_NONE_MATCH_FAILED = "If-None-Match"  # 412

    @property
    def failed(self) -> bool:
        return self in (Outcome.IF_MATCH_FAILED, Outcome.IF_NONE_MATCH_FAILED)


def evaluate(conditions: Preconditions, current: Collection[str] | None, *, safe: bool) -> Outcome:
    """RFC 9110 section 13.2.2: step 1, If-Match (false: 412); step 3, If-None-Match (false: 304 for GET and HEAD,
    else 412); step 6, perform the method. Steps 2 and 4 (the date conditions) never apply: the gateway sends no
    Last-Modified, and section 13.1.4 says to ignore them then; step 5 (ranges) neither, as no range is served.
    `current` holds the current entity tags of the target resource (one per representation a write may have been
    prepared from), None when the resource has no current representation; `safe` says the method is GET or
    HEAD."""
    if_match, if_none_match = conditions.if_match, conditions.if_none_match
    if if_match is not None and not _names(if_match, current, strong=True):
        return Outcome.IF_MATCH_FAILED
    if if_none_match is not None and _names(if_none_match, current, strong=False):
        return Outcome.NOT_MODIFIED if safe else Outcome.IF_NONE_MATCH_FAILED
    return Outcome.PERFORM


def _names(condition: EntityTagCondition, current: Collection[str] | None, *, strong: bool) -> bool:
    """Whether the condition names a current version: `*` any (there is one), a list one of `current`'s tags,
    compared strongly (If-Match) or weakly (If-None-Match)."""
    if current is None:
        return False
    matches = condition.matches_strongly if strong else condition.matches_weakly
    return condition.any_version or any(matches(tag) for tag in current)


async def require_preconditions(
    tasks: MongoCollection, task_id: int, conditions: Preconditions, session: AsyncClientSession
) -> TaskDoc:
    """The task as this transaction reads it, if its ETags satisfy `conditions` (`evaluate` for a write);
    TaskNotFound when it does not exist (RFC 9110 section 13.2.1: the conditions are ignored where the answer would
    be an error anyway), else PreconditionFailed naming the condition that failed and holding the task read."""
    doc = await tasks.find_one({"_id": task_id}, session=session)
    readable = readable_task(doc) if doc is not None else None
    if readable is None:
        raise TaskNotFound([task_id])
    shown = await _shown_in(tasks, readable, session)
    outcome = evaluate(conditions, etags_of(readable, shown), safe=False)
    if outcome.failed:
        raise PreconditionFailed(f"task {task_id}", outcome.value, version_of(readable, shown))
    return readable


async def _shown_in(tasks: MongoCollection, doc: TaskDoc, session: AsyncClientSession) -> Shown:
    """The next tasks `doc`'s representation shows, as this transaction reads them."""
    wanted = shown_next_ids(doc)
    if not wanted:
        return {}
    found = [readable_task(linked) async for linked in tasks.find({"_id": {"$in": wanted}}, session=session)]
    return {linked["_id"]: linked for linked in found if linked is not None}
