"""One task at a time: merging a patch into it, deleting it with every link to or from it (reading one task:
models.coalesce)."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from models.actors import ACTING
from models.conditions import Preconditions, require_preconditions
from models.errors import InvalidOperation, TaskNotFound
from models.locks import bump_link_locks
from models.storage import Storage
from models.stored_task import TaskDoc, readable_task
from models.task import DEFAULT_TYPE, TaskPatch, now_utc

SERVER_OWNED = frozenset({"id", "creation_timestamp", "update_timestamp"})
"""Patch fields a client may send but never changes (the id must match the path's)."""


def patch_update(task_id: int, patch: TaskPatch) -> dict[str, Any]:
    """The MongoDB update of a patch: present fields replace, null clears (a cleared `type` falls back to the
    default, as on create), absent fields stay; the update time is now. InvalidOperation for a body id that is
    not `task_id`."""
    if patch.id is not None and patch.id != task_id:
        raise InvalidOperation(f"id: body id {patch.id} does not match path id {task_id}")
    values = patch.model_dump(by_alias=True, include=patch.model_fields_set - SERVER_OWNED)
    to_set = {name: value for name, value in values.items() if value is not None}
    to_unset = {name: "" for name, value in values.items() if value is None}
    if "type" in to_unset:
        del to_unset["type"]
        to_set["type"] = DEFAULT_TYPE
    to_set["update-timestamp"] = now_utc()
    update: dict[str, Any] = {"$set": to_set}
    if to_unset:
        update["$unset"] = to_unset
    return update


def _read_task(task_id: int) -> str:
    return f"read task {task_id} to learn whether the change was stored"


class Records:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def update(self, task_id: int, patch: TaskPatch, conditions: Preconditions | None = None) -> TaskDoc:
        """The task after merging `patch` (`patch_update`); InvalidOperation, TaskNotFound. With `conditions`,
        only while the task's ETags satisfy them (PreconditionFailed otherwise; models.conditions)."""
        update = patch_update(task_id, patch)
        update["$set"].update(self._storage.stamp())
        moves = "job-id" in update["$set"] or "job-id" in update.get("$unset", {})

        async def work(session: AsyncClientSession) -> TaskDoc | None:
            if self._storage.scope is not None:  # outside the caller's scope is not found, in this transaction
                await self._storage.require_ids({task_id}, session)
            if conditions is not None:
                return await self._update_if_preconditions(task_id, update, moves, conditions, session)
            if moves:
                return await self._move_to_job(task_id, update, session)
            return await self._storage.tasks.find_one_and_update(
                {"_id": task_id}, update, return_document=ReturnDocument.AFTER, session=session
            )

        # Even a single write is a transaction: a write whose reply a deadline cut could have been applied, where
        # a commit's outcome is learned (models.transactions), so a refusal means nothing changed.
        doc = await self._storage.in_transaction(work, lambda: _read_task(task_id))
        readable = readable_task(doc) if doc is not None else None
        if readable is None:
            raise TaskNotFound([task_id])
        return readable

    async def _update_if_preconditions(
        self,
        task_id: int,
        update: dict[str, Any],
        moves: bool,
        conditions: Preconditions,
        session: AsyncClientSession,
    ) -> TaskDoc | None:
        await require_preconditions(self._storage.tasks, task_id, conditions, session)
        if moves:
            return await self._move_to_job(task_id, update, session)
        return await self._storage.tasks.find_one_and_update(
            {"_id": task_id}, update, return_document=ReturnDocument.AFTER, session=session
        )

    async def _move_to_job(self, task_id: int, update: dict[str, Any], session: AsyncClientSession) -> TaskDoc | None:
        """An update that may change the task's job also bumps the link locks of its old and new job."""
        before = await self._storage.tasks.find_one({"_id": task_id}, {"job-id": 1}, session=session)
        readable = readable_task(before) if before is not None else None
        if readable is None:
            return None
        new_job = update["$set"].get("job-id")  # absent when the patch clears it
        await bump_link_locks(self._storage.counters, {readable.get("job-id"), new_job}, session)
        return await self._storage.tasks.find_one_and_update(
            {"_id": task_id}, update, return_document=ReturnDocument.AFTER, session=session
        )

    async def delete(self, task_id: int, conditions: Preconditions | None = None) -> None:
        """Delete the task and every link to or from it, found through the indexes rather than its own arrays
        so that links written inconsistently by other tools are cleaned up too; TaskNotFound. With `conditions`,
        only while the task's ETags satisfy them (PreconditionFailed otherwise)."""
        tasks = self._storage.tasks

        async def work(session: AsyncClientSession) -> None:
            await self._storage.require_ids({task_id}, session)
            if conditions is not None:
                await require_preconditions(tasks, task_id, conditions, session)
            touched = {"$set": {"update-timestamp": now_utc(), **self._storage.stamp()}}
            await tasks.update_many({"nexts": task_id}, {"$pull": {"nexts": task_id}, **touched}, session=session)
            await tasks.update_many({"previous": task_id}, {"$pull": {"previous": task_id}, **touched}, session=session)
            if ACTING.get() is not None:  # the deletion's event finds its caller in the task's last state
                await tasks.update_one({"_id": task_id}, {"$set": self._storage.stamp(deleting=True)}, session=session)
            await tasks.delete_one({"_id": task_id}, session=session)

        await self._storage.in_transaction(work, lambda: f"{_read_task(task_id)}: not found means it was deleted")
