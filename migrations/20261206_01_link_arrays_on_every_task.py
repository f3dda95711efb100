"""Every task holds its two link arrays: `nexts` and `previous` absent or null become [].

Earlier layouts left them out on tasks without links, and tools writing directly still may; since the validator
(TRACKING_VALIDATION_ACTION) every task written must hold both. Every reader already took an absent or null
array for [] (models.stored_task), and `tracking-gateway check --repair` repairs them one task at a time: this
migration does the same for the whole collection at once, in one transaction (`beanie migrate` runs each
migration in one), and is safe to run again (it changes only what still needs it). Only tasks: documents whose
`_id` is no number are no tasks (models.stored_task) and are left as they are.

No Backward: an empty array and an absent one read the same, so there is nothing to undo.
"""

from __future__ import annotations

from beanie import free_fall_migration
from pymongo.asynchronous.client_session import AsyncClientSession

from models.documents import TaskRecord
from models.stored_task import LINK_FIELDS


class Forward:
    @free_fall_migration(document_models=[TaskRecord])
    async def link_arrays_on_every_task(self, session: AsyncClientSession) -> None:
        tasks = TaskRecord.get_pymongo_collection()
        for name in LINK_FIELDS:
            # {name: None} matches an absent field and a null one, as check --repair's rule does.
            await tasks.update_many({"_id": {"$type": "number"}, name: None}, {"$set": {name: []}}, session=session)
