"""Entity tags of tasks and the conditional write (RFC 9110 sections 8.8.3 and 13.1.1); the grammar of the
conditions is HTTP's, read by the front ends (web.etags).

A task's ETag is a strong validator computed from the task as the gateway reads it: the BLAKE2b hash (16 bytes,
hex, quoted) of the BSON encoding of its readable document (models.layout.readable_task). Every change of a
field readers see, link changes and writes by ops tools included, changes it; nothing needs to maintain it.

A conditional write runs in one transaction that reads the task, compares its ETag, then writes it: a concurrent
change is either seen (PreconditionFailed) or makes this transaction's write conflict, and the driver runs it
again, when it is seen. Writes without a condition take the path they always took.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import bson
from pymongo.asynchronous.client_session import AsyncClientSession

from models.errors import PreconditionFailed, TaskNotFound
from models.layout import Collection, TaskDoc, readable_task

ETAG_DIGEST_BYTES = 16


def etag_of(doc: TaskDoc) -> str:
    """The strong ETag of a task as read (a readable document): `"<32 hex digits>"`."""
    digest = hashlib.blake2b(bson.encode(doc), digest_size=ETAG_DIGEST_BYTES).hexdigest()
    return f'"{digest}"'


class EntityTagCondition(Protocol):
    """What a conditional write (If-Match) asks of its condition: whether a task's current ETag satisfies it.
    The front ends build one from the field's grammar (web.etags); the store only compares."""

    def matches_strongly(self, current: str) -> bool:
        """RFC 9110 section 13.1.1: strong comparison, so a weak tag never matches."""
        ...


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
