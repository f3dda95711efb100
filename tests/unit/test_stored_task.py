"""TaskDoc, the stored task as a TypedDict (models/stored_task.py), written out key by key: it must name exactly
the fields the validator and the tolerant reader are built from (FIELD_KINDS, `_id` and the links), each with
the Python type its BSON kind reads as, or the type and the stored layout drift apart."""

from __future__ import annotations

import typing
from datetime import datetime

from bson.int64 import Int64

from models.stored_task import BOOL, DATE, FIELD_KINDS, INT32, LINK_FIELDS, STRING, TaskDoc, readable_task

PYTHON_TYPE_OF_KIND = {STRING: str | None, INT32: int | None, BOOL: bool | None, DATE: datetime | None}


def test_taskdoc_names_every_stored_field_with_the_type_it_is_read_as() -> None:
    hints = typing.get_type_hints(TaskDoc)
    assert hints.pop("_id") is int
    for name in LINK_FIELDS:
        assert hints.pop(name) == list[int]
    assert hints == {name: PYTHON_TYPE_OF_KIND[kind] for name, kind in FIELD_KINDS.items()}


def test_only_the_id_is_required_a_tool_may_leave_out_any_other_field() -> None:
    assert TaskDoc.__required_keys__ == frozenset({"_id"})
    assert TaskDoc.__optional_keys__ == frozenset({*LINK_FIELDS, *FIELD_KINDS})


def test_the_type_describes_and_does_not_validate_a_tools_own_field_is_kept() -> None:
    stored = {"_id": Int64(7), "nexts": [], "previous": [], "status": "READY", "x-tool": {"kept": True}}
    task = readable_task(stored)
    assert task is not None
    assert dict(task) == stored
