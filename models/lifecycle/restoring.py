"""Restore: the documents of an archive (models.archive) put back byte for byte (`bson.encode` of each equals
the archived one), in one transaction that first refuses ids already in use. Links to tasks outside the archive
are kept when those tasks exist (their side of the link is written back, so the invariant holds) and left out,
with a note, when they do not: the archive of the other end brings them back when it is restored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import bson
from bson.errors import InvalidDocument
from bson.int64 import Int64
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DocumentTooLarge

from models.archive import JobArchive, RestoreReport
from models.archive_rules import CheckedTasks, checked_tasks
from models.errors import InvalidOperation, TaskAlreadyExists
from models.lifecycle.job_data import JobData, bump_job_link_locks
from models.restore_cycles import refuse_cycles
from models.stored_task import TaskDoc
from models.task import COUNTER_FOLLOWS_IDS_UP_TO, now_utc

MAX_BSON_SIZE = 16 * 1024 * 1024
"""MongoDB's largest document."""


class Restoring(JobData):
    async def restore(self, archive: JobArchive) -> RestoreReport:
        """Insert the archived documents as they were, in one transaction; InvalidOperation naming the first
        problem when the archive breaks a graph rule (models.archive_rules, models.restore_cycles),
        TaskAlreadyExists (naming them) when any of its ids is in use; nothing changed then."""
        checked = checked_tasks(archive)
        return await self._in_transaction(lambda session: self._restore_in(archive, checked, session))  # type: ignore[no-any-return]

    async def _restore_in(
        self, archive: JobArchive, checked: CheckedTasks, session: AsyncClientSession
    ) -> RestoreReport:
        ids = [doc["_id"] for doc in checked.tasks]
        taken = [doc["_id"] async for doc in self._tasks.find({"_id": {"$in": ids}}, {"_id": 1}, session=session)]
        if taken:
            raise TaskAlreadyExists(taken)
        restored = set(ids)
        outside = {other for doc in checked.tasks for other in _linked_ids(doc)} - restored
        stored = await self._tasks.find({"_id": {"$in": list(outside)}}, {"job-id": 1}, session=session).to_list(None)
        present = {doc["_id"] for doc in stored}
        tasks, left_out = _without_links_to(checked.tasks, outside - present)
        jobs_read = await refuse_cycles(self._tasks, tasks, present, archive.source, session)
        await bump_job_link_locks(
            self._counters,
            {doc.get("job-id") for doc in tasks} | {doc.get("job-id") for doc in stored} | jobs_read,
            session,
        )
        await _insert_restored(self._tasks, tasks, archive.where, session)
        await self._link_back(tasks, present, session)
        await self._raise_counter_past(ids, session)
        entry_ids = [entry["_id"] for entry in archive.history]
        stored_entries = self._history.find({"_id": {"$in": entry_ids}}, {"_id": 1}, session=session)
        existing = {repr(entry["_id"]) async for entry in stored_entries}  # repr: an _id may be a document
        fresh = [(index, entry) for index, entry in enumerate(archive.history) if repr(entry["_id"]) not in existing]
        await _insert_restored(
            self._history, [entry for _, entry in fresh], lambda n: archive.where_entry(fresh[n][0]), session
        )
        return RestoreReport(archive.job_id, len(tasks), len(fresh), len(existing), left_out, checked.completed)

    async def _link_back(self, tasks: list[TaskDoc], present: set[Any], session: AsyncClientSession) -> None:
        """Stored tasks linked from restored ones get their side of each link back (and are stamped, as every
        link change stamps the tasks it changes)."""
        nexts: dict[Any, list[Any]] = {}
        previous: dict[Any, list[Any]] = {}
        for doc in tasks:
            for other in _list(doc.get("nexts")):
                if other in present:
                    previous.setdefault(other, []).append(doc["_id"])
            for other in _list(doc.get("previous")):
                if other in present:
                    nexts.setdefault(other, []).append(doc["_id"])
        stamp = {"update-timestamp": now_utc()}
        updates = [
            UpdateOne({"_id": task_id}, {"$addToSet": {array: {"$each": linked}}, "$set": stamp})
            for array, by_task in (("nexts", nexts), ("previous", previous))
            for task_id, linked in by_task.items()
        ]
        if updates:
            await self._tasks.bulk_write(updates, ordered=True, session=session)

    async def _raise_counter_past(self, ids: Iterable[Any], session: AsyncClientSession) -> None:
        followed = [i for i in ids if isinstance(i, int) and 0 < i <= COUNTER_FOLLOWS_IDS_UP_TO]
        if followed:
            await self._counters.update_one(
                {"_id": self._counter_id}, {"$max": {"seq": Int64(max(followed))}}, upsert=True, session=session
            )


async def _insert_restored(
    collection: Any, docs: list[TaskDoc], where: Callable[[int], str], session: AsyncClientSession
) -> None:
    """Insert restored documents as they were (past the validator); InvalidOperation naming the first one
    MongoDB refuses (a document past 16 MiB, a field name it does not store) rather than its traceback."""
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=True, session=session, bypass_document_validation=True)
    except BulkWriteError as error:
        (first, *_) = error.details.get("writeErrors") or [{"index": 0, "errmsg": str(error)}]
        raise InvalidOperation(
            f"{where(first['index'])}: MongoDB refused the document: {first.get('errmsg')}; nothing was restored"
        ) from None
    except (DocumentTooLarge, InvalidDocument) as error:  # refused by the driver, before MongoDB: find which
        at = next((n for n, doc in enumerate(docs) if not _storable(doc)), 0)
        raise InvalidOperation(f"{where(at)}: MongoDB refused the document: {error}; nothing was restored") from None


def _storable(doc: TaskDoc) -> bool:
    try:
        return len(bson.encode(doc)) <= MAX_BSON_SIZE
    except InvalidDocument:
        return False


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _linked_ids(doc: TaskDoc) -> Iterator[Any]:
    yield from _list(doc.get("nexts"))
    yield from _list(doc.get("previous"))


def _without_links_to(tasks: list[TaskDoc], gone: set[Any]) -> tuple[list[TaskDoc], list[tuple[int, int]]]:
    """The tasks with links to `gone` ids left out (copies, only of the tasks that had some), and those links."""
    if not gone:
        return tasks, []
    left_out: list[tuple[int, int]] = []
    kept: list[TaskDoc] = []
    for doc in tasks:
        if not any(other in gone for other in _linked_ids(doc)):
            kept.append(doc)
            continue
        copy = dict(doc)
        for array in ("nexts", "previous"):
            if isinstance(doc.get(array), list):
                copy[array] = [other for other in doc[array] if other not in gone]
                pairs = ((doc["_id"], o) if array == "nexts" else (o, doc["_id"]) for o in doc[array] if o in gone)
                left_out.extend(pairs)
        kept.append(copy)
    return kept, left_out
