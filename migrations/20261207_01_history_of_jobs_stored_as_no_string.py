"""A history entry's `job` is null for a task whose `job-id` is stored as no string: entries written before
this rule named such a job as readers serve it (the number 7 as "7", true as "true"), so a caller scoped to `7`
read the changes of a task it cannot see (models.scopes: a job of another type is in no scope).

For each task whose `job-id` is a number or a boolean (the types readers serve as text; arrays, documents and
the rest were recorded as null already), its entries naming that text become null. An entry cannot say which
type its job had: one recorded while the task's job-id was the string "7", before a tool stored the number,
is nulled too (it is read by callers allowed every job only, as the task now is), and the entries of a task
deleted since keep their job. Safe to run again: it changes only entries still naming the text.

No Backward: the text is the task's job-id as readers serve it, which the task still holds.
"""

from __future__ import annotations

from beanie import free_fall_migration
from bson.int64 import Int64
from pymongo.asynchronous.client_session import AsyncClientSession

from models.documents import HistoryEntry, TaskRecord
from models.stored_task import as_task_id, readable_value

SERVED_AS_TEXT = ["int", "long", "double", "bool"]
"""The BSON types of a `job-id` that readers serve as text (models.stored_task.readable_value)."""


class Forward:
    @free_fall_migration(document_models=[TaskRecord, HistoryEntry])
    async def history_of_jobs_stored_as_no_string(self, session: AsyncClientSession) -> None:
        tasks = TaskRecord.get_pymongo_collection()
        history = HistoryEntry.get_pymongo_collection()
        odd = tasks.find({"job-id": {"$type": SERVED_AS_TEXT}}, {"job-id": 1}, session=session)
        async for task in odd:
            task_id, text = as_task_id(task["_id"]), readable_value("job-id", task["job-id"])
            if task_id is not None and text is not None:
                entries = {"task": Int64(task_id), "job": text}
                await history.update_many(entries, {"$set": {"job": None}}, session=session)
