"""The graph store's rules that need no MongoDB: links, filters, patches, walks and the driver-error mapping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo import UpdateOne
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DocumentTooLarge,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from models import InvalidOperation, StorageUnavailable, TaskPatch
from models.deadline import bounded, domain_error, is_duplicate_key
from models.filters import task_filter, task_matches
from models.links import link_updates, refuse_self_links
from models.records import patch_update
from models.stored_task import TaskDoc
from models.task import parse_datetime
from models.walks import next_level


def test_a_self_link_is_refused_naming_the_task() -> None:
    refuse_self_links([(1, 2), (2, 1)])
    with pytest.raises(InvalidOperation, match="task 3 cannot be linked to itself"):
        refuse_self_links([(1, 2), (3, 3)])


def _parts(updates: list[UpdateOne]) -> list[tuple[Any, Any]]:
    """(filter, update document) of each UpdateOne."""
    return [(update._filter, update._doc) for update in updates]


def test_link_additions_write_each_task_once_on_both_sides() -> None:
    updates = _parts(link_updates([(1, 2), (1, 3), (4, 2)], "$addToSet"))
    assert [(match, {k: v for k, v in doc.items() if k != "$set"}) for match, doc in updates] == [
        ({"_id": 1}, {"$addToSet": {"nexts": {"$each": [2, 3]}}}),
        ({"_id": 4}, {"$addToSet": {"nexts": {"$each": [2]}}}),
        ({"_id": 2}, {"$addToSet": {"previous": {"$each": [1, 4]}}}),
        ({"_id": 3}, {"$addToSet": {"previous": {"$each": [1]}}}),
    ]
    assert all("update-timestamp" in doc["$set"] for _, doc in updates)


def test_link_removals_only_touch_tasks_that_hold_the_link() -> None:
    (source, target) = _parts(link_updates([(1, 2)], "$pull"))
    assert (source[0], source[1]["$pull"]) == ({"_id": 1, "nexts": {"$in": [2]}}, {"nexts": {"$in": [2]}})
    assert (target[0], target[1]["$pull"]) == ({"_id": 2, "previous": {"$in": [1]}}, {"previous": {"$in": [1]}})


@pytest.mark.parametrize(
    ("doc", "statuses", "task_type", "statuses_not", "kept"),
    [
        ({"status": "READY"}, ["READY"], None, None, True),
        ({"status": "READY"}, ["DONE"], None, None, False),
        ({"status": "READY"}, None, None, ["READY"], False),
        ({}, None, "task", None, True),  # a missing type counts as "task"
        ({"type": "execution-task"}, None, "task", None, False),
        ({"type": "execution-task"}, None, "execution-task", None, True),
    ],
)
def test_the_filter_and_the_in_memory_test_follow_one_rule(
    doc: TaskDoc, statuses: list[str] | None, task_type: str | None, statuses_not: list[str] | None, kept: bool
) -> None:
    assert task_matches(doc, statuses, task_type, statuses_not) is kept
    query = task_filter(statuses, task_type, statuses_not)
    assert set(query) <= {"status", "type"}
    if task_type == "task":
        assert query["type"] == {"$in": ["task", None]}


def test_a_patch_replaces_clears_and_keeps() -> None:
    patch = TaskPatch.model_validate({"status": "DONE", "name": None, "type": None, "update-timestamp": "x"})
    update = patch_update(7, patch)
    assert update["$set"]["status"] == "DONE" and update["$set"]["type"] == "task"
    assert isinstance(update["$set"]["update-timestamp"], datetime)
    assert update["$set"]["update-timestamp"].tzinfo is not None
    assert update["$unset"] == {"name": ""}
    assert patch_update(7, TaskPatch.model_validate({"id": 7}))["$set"].keys() == {"update-timestamp"}
    with pytest.raises(InvalidOperation, match="body id 8 does not match path id 7"):
        patch_update(7, TaskPatch.model_validate({"id": 8}))


def test_a_walk_level_holds_each_unseen_task_once_in_order() -> None:
    seen = {1}
    docs: list[TaskDoc] = [{"_id": 1, "nexts": [3, 2, 1]}, {"_id": 5, "nexts": [2, 4]}]
    assert next_level(docs, "nexts", seen) == [3, 2, 4]
    assert seen == {1, 2, 3, 4}
    assert next_level(docs, "previous", seen) == []


def test_driver_errors_become_domain_errors() -> None:
    assert isinstance(domain_error(DocumentTooLarge("big")), InvalidOperation)
    assert "16 MiB" in str(domain_error(OperationFailure("big", code=10334)))
    assert "smaller requests" in str(domain_error(OperationFailure("txn", code=257)))
    refused = domain_error(OperationFailure("x", code=14, details={"errmsg": "not an array"}))
    assert isinstance(refused, InvalidOperation) and "not an array" in str(refused)
    assert isinstance(domain_error(ServerSelectionTimeoutError("no primary")), StorageUnavailable)
    assert isinstance(domain_error(AutoReconnect("reset")), StorageUnavailable)
    assert domain_error(OperationFailure("other", code=8000)) is None


def test_duplicate_keys_are_recognised_in_bulk_writes_too() -> None:
    assert is_duplicate_key(OperationFailure("dup", code=11000))
    assert is_duplicate_key(BulkWriteError({"writeErrors": [{"code": 11000}]}))
    assert not is_duplicate_key(BulkWriteError({"writeErrors": [{"code": 121}]}))


class _Slow:
    timeout_s = 0.05

    @bounded
    async def wait(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    @bounded
    async def fail(self) -> None:
        raise OperationFailure("other", code=8000)

    @bounded
    async def encode_too_large(self) -> None:
        raise DocumentTooLarge("BSON document too large")


async def test_a_bounded_operation_ends_at_its_deadline_with_storage_unavailable() -> None:
    assert await _Slow().wait(0) == "done"
    started = datetime.now(UTC)
    with pytest.raises(StorageUnavailable, match="MongoDB unavailable"):
        await _Slow().wait(5)
    assert (datetime.now(UTC) - started).total_seconds() < 2
    with pytest.raises(OperationFailure):  # nothing a caller can act on: left as it is (a 500)
        await _Slow().fail()
    with pytest.raises(InvalidOperation, match="16 MiB"):  # a bson error, no PyMongoError
        await _Slow().encode_too_large()


@given(st.integers(min_value=-62135596800000, max_value=253402300799999))
def test_epoch_milliseconds_are_read_exactly_as_number_and_as_text(milliseconds: int) -> None:
    """Whole milliseconds, both ways: a float division lost one far from 1970 (9999-12-31T23:59:59.999Z, Java's
    "end of time", came back .998)."""
    parsed = parse_datetime(milliseconds)
    assert (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == milliseconds
    assert parse_datetime(str(milliseconds)) == parsed


@pytest.mark.parametrize("text", ["\u0661\u0662\u0663", "\uff11\uff12\uff13", "--5", "-", "1_000"])
def test_epoch_milliseconds_as_text_are_ascii_digits(text: str) -> None:
    """str.isdigit takes every script's digits (and int() reads them): Arabic-Indic digits were stored as a date."""
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_datetime(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-01-01X00:00:00", "ISO 8601"),  # datetime.fromisoformat takes any separator
        ("2026-W01-1", "ISO 8601"),  # and week dates
        ("2026-01-01T00:00:00 Z", "ISO 8601"),
        ("\u00a01700000000123", "ISO 8601"),  # str.strip takes a no-break space as white space
        ("9" * 5000, "out of range"),  # int() said "Exceeds the limit (4300 digits) for integer string conversion"
    ],
)
def test_a_date_as_text_is_a_date_time_or_epoch_milliseconds_and_nothing_else(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_datetime(text)


@pytest.mark.parametrize(
    "text", ["2026-01-01", "2026-01-01T10:00", "2026-01-01 10:00:00+0100", "2026-01-01T10:00:00.123456789+01:00"]
)
def test_the_date_times_callers_send_are_read(text: str) -> None:
    assert parse_datetime(text).year == 2026
    assert parse_datetime(" 0001700000000123\n") == parse_datetime(1700000000123)  # JSON's white space, zeros
