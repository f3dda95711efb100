"""Entity tags of tasks and the conditions of conditional requests (RFC 9110 sections 8.8.3 and 13.1).

A task's ETag is a strong validator computed from the task as the gateway reads it: the BLAKE2b hash (16 bytes,
hex, quoted) of the BSON encoding of its readable document (models.layout.readable_task). Every change of a
field readers see, link changes and writes by ops tools included, changes it; nothing needs to maintain it.

A conditional write runs in one transaction that reads the task, compares its ETag, then writes it: a concurrent
change is either seen (PreconditionFailed) or makes this transaction's write conflict, and the driver runs it
again, when it is seen. Writes without a condition take the path they always took.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import bson
from pymongo.asynchronous.client_session import AsyncClientSession

from models.errors import InvalidOperation, PreconditionFailed, TaskNotFound
from models.layout import Collection, TaskDoc, readable_task

ETAG_DIGEST_BYTES = 16

# RFC 9110 section 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text
_ENTITY_TAG = re.compile(r'(W/)?("[\x21\x23-\x7e\x80-\xff]*")')
_OWS = " \t"


def etag_of(doc: TaskDoc) -> str:
    """The strong ETag of a task as read (a readable document): `"<32 hex digits>"`."""
    digest = hashlib.blake2b(bson.encode(doc), digest_size=ETAG_DIGEST_BYTES).hexdigest()
    return f'"{digest}"'


@dataclass(frozen=True)
class EntityTagCondition:
    """The value of an If-Match or If-None-Match field: `*` (any current version) or a list of entity tags,
    each kept with whether it is weak (`W/`)."""

    any_version: bool
    tags: tuple[tuple[bool, str], ...] = ()

    def matches_strongly(self, current: str) -> bool:
        """If-Match (RFC 9110 section 13.1.1): strong comparison, so a weak tag never matches."""
        return self.any_version or any(not weak and tag == current for weak, tag in self.tags)

    def matches_weakly(self, current: str) -> bool:
        """If-None-Match (RFC 9110 section 13.1.2): weak comparison, the `W/` prefix ignored."""
        return self.any_version or any(tag == current for _, tag in self.tags)


def parse_condition(value: str, name: str) -> EntityTagCondition:
    """`*` or a comma-separated list of entity tags (RFC 9110 sections 13.1.1 and 5.6.1: empty list elements
    are allowed and ignored). Several field lines come joined with commas. InvalidOperation naming `name` for
    anything else, such as a tag without its double quotes."""
    stripped = value.strip(_OWS)
    if stripped == "*":
        return EntityTagCondition(any_version=True)
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(value):
        while position < len(value) and value[position] in _OWS + ",":
            position += 1
        if position == len(value):
            break
        match = _ENTITY_TAG.match(value, position)
        if match is None:
            raise InvalidOperation(
                f'{name}: expected * or entity tags in double quotes, such as "3f2a…" or W/"3f2a…", at '
                f"{value[position : position + 40]!r}"
            )
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
        while position < len(value) and value[position] in _OWS:
            position += 1
        if position < len(value) and value[position] != ",":
            raise InvalidOperation(f"{name}: entity tags must be separated by commas, at {value[position:][:40]!r}")
    if not tags:
        raise InvalidOperation(f"{name}: expected * or at least one entity tag")
    return EntityTagCondition(any_version=False, tags=tuple(tags))


async def require_match(
    tasks: Collection, task_id: int, condition: EntityTagCondition, session: AsyncClientSession
) -> TaskDoc:
    """The task as this transaction reads it, if its ETag satisfies `condition` (If-Match); TaskNotFound when it
    does not exist (RFC 9110 section 13.2.1: the condition is ignored where the answer would be an error
    anyway), else PreconditionFailed."""
    doc = await tasks.find_one({"_id": task_id}, session=session)
    readable = readable_task(doc) if doc is not None else None
    if readable is None:
        raise TaskNotFound([task_id])
    if not condition.matches_strongly(etag_of(readable)):
        raise PreconditionFailed(task_id)
    return readable
