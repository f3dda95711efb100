"""Planning a create (models.creation): pure code, no MongoDB."""

from __future__ import annotations

from typing import Any

import pytest
from bson.int64 import Int64

from models import InvalidOperation, Limits, TaskCreate
from models.creation import client_ids_of, duplicate_ids, new_documents, plan_creation


def spec(**fields: Any) -> TaskCreate:
    return TaskCreate.model_validate({name.replace("_", "-"): value for name, value in fields.items()})


def nested(*children: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**fields, "nexts": {"tasks": list(children)}}


def test_nested_nexts_are_flattened_depth_first_in_request_order() -> None:
    a = TaskCreate.model_validate(nested(nested({"name": "a11"}, name="a1"), {"name": "a2"}, name="a"))
    plan = plan_creation([a, spec(name="b")])
    assert [item.fields["name"] for item in plan] == ["a", "a1", "a11", "a2", "b"]
    assert [item.parent for item in plan] == [None, 0, 1, 0, None]
    assert [item.children for item in plan] == [[1, 3], [2], [], [], []]


def test_the_rules_are_checked_in_order_and_the_first_broken_one_is_the_error() -> None:
    limits = Limits(max_tasks_per_create=2)
    with pytest.raises(InvalidOperation, match="at least one task"):
        client_ids_of([], limits)
    # three tasks, two of them with the same id: the count is refused first
    with pytest.raises(InvalidOperation, match="more than 2 tasks in one create"):
        client_ids_of(plan_creation([spec(id=5), spec(id=5), spec()]), limits)
    with pytest.raises(InvalidOperation, match="task id 5 appears more than once"):
        client_ids_of(plan_creation([spec(id=5), spec(id=5)]), limits)
    assert client_ids_of(plan_creation([spec(id=7), spec()]), limits) == [7]


def test_duplicate_ids_are_named_once_each_ascending() -> None:
    assert duplicate_ids([3, 9, 3, 1, 9, 3]) == [3, 9]
    assert duplicate_ids([1, 2]) == []


def test_new_documents_link_both_ways_and_fill_the_defaults() -> None:
    parent = TaskCreate.model_validate(nested({"name": "child"}, {"name": "other", "job-id": "k"}, **{"job-id": "j"}))
    docs = new_documents(plan_creation([parent]), [10, 11, 12])
    assert [doc["_id"] for doc in docs] == [10, 11, 12] and all(isinstance(doc["_id"], Int64) for doc in docs)
    assert [doc["root"] for doc in docs] == [True, False, False]
    assert [doc["type"] for doc in docs] == ["task"] * 3
    assert [doc.get("job-id") for doc in docs] == ["j", "j", "k"]  # a child's own job wins over its parent's
    assert [doc["nexts"] for doc in docs] == [[11, 12], [], []]
    assert [doc["previous"] for doc in docs] == [[], [10], [10]]
    assert docs[0]["creation-timestamp"] == docs[0]["update-timestamp"] == docs[2]["creation-timestamp"]


def test_a_given_root_and_type_are_kept() -> None:
    (doc,) = new_documents(plan_creation([spec(root=False, type="execution-task", status="READY")]), [1])
    assert (doc["root"], doc["type"], doc["status"]) == (False, "execution-task", "READY")
    assert "nexts" in doc and "id" not in doc
