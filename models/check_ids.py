"""`tracking-gateway check`'s findings about ids (models.check): the layout stores every id, a task's `_id` and
each item of its link arrays, as an int64 > 0. An id off it is one of two things, reported apart since they
differ for readers: a task id of another BSON type (an int32, a double holding an integer, as mongosh writes),
which readers serve as that id, and a value that is no task id at all (-5, 0, 2.5, a Decimal128, a string), which
readers leave out: a document with such an `_id` is served as no task, such a link is not served."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bson.int64 import Int64

from models.stored_task import LINK_FIELDS, as_task_id, is_int64_id

NOT_INT64_IDS = "task ids not stored as int64"
NO_TASK_IDS = "ids that are no task id (an int64 > 0)"


def id_problems(doc: dict[str, Any]) -> dict[str, str]:
    """The ids of `doc` off the layout, by finding, each as one example naming the document and the fields."""
    found: dict[str, list[str]] = defaultdict(list)
    stored_id = doc.get("_id")
    if as_task_id(stored_id) is None:
        found[NO_TASK_IDS].append("_id: the document is served as no task")
    elif not is_int64_id(stored_id):
        found[NOT_INT64_IDS].append(f"_id has type {type(stored_id).__name__}")
    for name in LINK_FIELDS:
        stored = doc.get(name)
        if not isinstance(stored, list):
            continue  # a finding of its own (models.check: link fields that are not arrays)
        off_type = [shown(item) for item in stored if as_task_id(item) is not None and not is_int64_id(item)]
        no_task = [shown(item) for item in stored if as_task_id(item) is None]
        if off_type:
            found[NOT_INT64_IDS].append(f"{name} holds {', '.join(off_type)}")
        if no_task:
            found[NO_TASK_IDS].append(f"{name} holds {', '.join(no_task)}, left out")
    return {finding: f"{shown(stored_id)}: {'; '.join(problems)}" for finding, problems in found.items()}


def shown(value: Any) -> str:
    """A stored id as a person reads it: an integer as its digits, whichever BSON integer type; else its repr."""
    return str(int(value)) if type(value) in (int, Int64) else repr(value)
