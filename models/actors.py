"""Who changed a task: the gateway writes its caller into every task a change touches (`changed-by`), in the
same update, so the task history can tell a gateway's change (its caller) from a tool's (none) by what each
change itself wrote, never by what an earlier one left behind."""

from __future__ import annotations

import contextvars
from typing import Any

from bson.objectid import ObjectId

CHANGED_BY = "changed-by"
"""The stored task field: `{name, issuer, change}` of the gateway caller whose change wrote it last."""
DELETING = "deleting"
"""Set (true) on the `changed-by` a deletion writes just before it removes the task, in its transaction: the
deletion's event finds its caller in the task's last state, and that write is no change of its own."""

Actor = tuple[str, str | None]
"""A caller as the history names it: its name (a token's, a JWT's subject) and its issuer (None for tokens)."""
ACTING: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("tracking_actor", default=None)
"""Whom the changes made in this context are for: set by a front end once it knows a request's caller, read by
every write (models.storage.Storage.stamp); None (the command line, tools, background work): nobody's. A
context variable rather than a view of the store per caller: every unscoped caller keeps using the one store
(its coalesced reads shared), and no write path needs one more argument."""


def changed_by(actor: Actor, *, deleting: bool = False) -> dict[str, Any]:
    """The `changed-by` value one change writes. `change` is new every time, so that the field changes with
    every write, even a caller's second write of a task: MongoDB reports only the fields a write changed."""
    name, issuer = actor
    value: dict[str, Any] = {"name": name, "issuer": issuer, "change": ObjectId()}
    if deleting:
        value[DELETING] = True
    return value


def actor_of(value: Any) -> dict[str, Any] | None:
    """The actor of a history entry, `{name, issuer}`, from a `changed-by` value a change wrote; None when it is
    none the gateway could have written."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    issuer = value.get("issuer")
    return {"name": value["name"], "issuer": issuer if isinstance(issuer, str) else None}


def _updated_keys() -> dict[str, Any]:
    return {
        "$map": {"input": {"$objectToArray": {"$ifNull": ["$updateDescription.updatedFields", {}]}}, "in": "$$this.k"}
    }


def wrote_changed_by() -> dict[str, Any]:
    """A change stream expression: the `changed-by` the change itself wrote, else null. An insert's document
    holds it. An update wrote it when one of its updated paths is it or under it (MongoDB may report a changed
    sub-document whole or by its changed paths): its value is then the one the update set, when reported whole,
    else the task after the change (its post-image where the collection keeps images). A deletion finds it in
    the task's last state (its pre-image) marked `deleting`. A replacement (no gateway writes one) and every
    change of a tool that wrote no `changed-by` have none, whatever an earlier change left."""
    wrote = {
        "$anyElementTrue": [
            {
                "$map": {
                    "input": _updated_keys(),
                    "in": {"$eq": [{"$arrayElemAt": [{"$split": ["$$this", "."]}, 0]}, CHANGED_BY]},
                }
            }
        ]
    }
    whole = f"$updateDescription.updatedFields.{CHANGED_BY}"
    updated = {"$cond": [{"$eq": [{"$type": whole}, "object"]}, whole, f"$fullDocument.{CHANGED_BY}"]}
    before = f"$fullDocumentBeforeChange.{CHANGED_BY}"
    return {
        "$switch": {
            "branches": [
                {"case": {"$eq": ["$operationType", "insert"]}, "then": f"$fullDocument.{CHANGED_BY}"},
                {"case": {"$eq": ["$operationType", "update"]}, "then": {"$cond": [wrote, updated, None]}},
                {
                    "case": {"$eq": ["$operationType", "delete"]},
                    "then": {"$cond": [{"$eq": [f"{before}.{DELETING}", True]}, before, None]},
                },
            ],
            "default": None,
        }
    }


def marks_deletion() -> dict[str, Any]:
    """A change stream expression: whether an update is the mark a deletion writes just before it removes the
    task (no change of its own: neither the history nor subscribers hear of it)."""
    deleting = f"{CHANGED_BY}.{DELETING}"
    return {
        "$and": [
            {"$eq": ["$operationType", "update"]},
            {
                "$or": [
                    {"$in": [deleting, _updated_keys()]},
                    {"$eq": [f"$updateDescription.updatedFields.{deleting}", True]},
                ]
            },
        ]
    }
