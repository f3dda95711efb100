"""Bounded work per request (web/limits.py): each refusal names what is wrong and its setting."""

from __future__ import annotations

import pytest

from models import InvalidOperation
from web.limits import RequestLimits


def nested(levels: int) -> list[dict]:
    """`levels` of tasks, so `nexts` nested `levels - 1` deep."""
    tasks: list[dict] = [{"name": "leaf"}]
    for _ in range(levels - 1):
        tasks = [{"nexts": {"tasks": tasks}}]
    return tasks


def test_a_create_within_the_limits_passes():
    RequestLimits(max_tasks_per_create=4, max_nesting=3).refuse_oversized_creation([*nested(4)])
    RequestLimits(max_nesting=1).refuse_oversized_creation([*nested(2)])


def test_too_many_tasks_nested_ones_included_are_refused():
    with pytest.raises(InvalidOperation, match=r"more than 3 tasks .* \(TRACKING_MAX_TASKS_PER_CREATE\)"):
        RequestLimits(max_tasks_per_create=3).refuse_oversized_creation([*nested(2), *nested(2)])


def test_nexts_nested_too_deep_are_refused():
    """Deeper than the setting says, and no sooner: `nexts` nested exactly 3 deep were refused as "more than 3"."""
    with pytest.raises(InvalidOperation, match=r"more than 3 levels deep \(TRACKING_MAX_NESTING\)"):
        RequestLimits(max_nesting=3).refuse_oversized_creation(nested(5))
    with pytest.raises(InvalidOperation, match=r"more than 1 levels deep \(TRACKING_MAX_NESTING\)"):
        RequestLimits(max_nesting=1).refuse_oversized_creation(nested(3))


def test_an_empty_create_is_refused():
    with pytest.raises(InvalidOperation, match="at least one task is required"):
        RequestLimits().refuse_oversized_creation([])


def test_ids_are_parsed_and_bounded():
    limits = RequestLimits(max_ids_per_request=2)
    assert limits.task_ids(["1", 2], "nextTaskId") == [1, 2]
    with pytest.raises(InvalidOperation, match="nextTaskId"):
        limits.task_ids(["1", "2", "3"], "nextTaskId")
    with pytest.raises(InvalidOperation, match="at least one task id"):
        limits.task_ids([], "nextTaskId")


def test_documents_deeper_than_any_request_needs_are_refused():
    limits = RequestLimits(max_nesting=1)
    assert limits.max_document_depth == 12
    deep: object = "x"
    for _ in range(20):
        deep = {"a": deep}
    with pytest.raises(InvalidOperation, match="TRACKING_MAX_NESTING"):
        limits.refuse_oversized_document(deep, "variables")
