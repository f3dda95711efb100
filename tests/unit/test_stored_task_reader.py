"""The tolerant reader (models/stored_task.py `readable_task`): what another tool stored, as readers see it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bson.int64 import Int64
from bson.objectid import ObjectId

from models.stored_task import readable_task


def test_a_task_on_the_layout_is_served_as_it_is():
    doc = {"_id": Int64(7), "status": "READY", "root": True, "nexts": [Int64(8)], "previous": []}
    assert readable_task(doc) is doc


def test_wrong_types_are_converted_when_exact_and_left_out_otherwise():
    doc = {
        "_id": 7.0,
        "status": 5,
        "name": True,
        "number-of-retries": 2.0,
        "start-time": "2026-01-02T03:04:05.000Z",
        "root": "yes",
        "finish-time": "soon",
        "nexts": "8",
        "previous": [Int64(3), 3, "x", 4.0],
    }
    assert readable_task(doc) == {
        "_id": 7,
        "status": "5",
        "name": "true",
        "number-of-retries": 2,
        "start-time": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "nexts": [],
        "previous": [3, 4],
    }
    assert doc["status"] == 5, "the stored document is not changed"


def test_a_document_whose_id_is_no_task_id_is_no_task():
    assert readable_task({"_id": "seven", "status": "READY"}) is None
    assert readable_task({"_id": ObjectId(), "status": "READY"}) is None
    assert readable_task({"_id": 0, "status": "READY"}) is None


def test_the_warning_for_a_number_id_that_is_no_task_id_names_its_value_not_its_type(caplog):
    """A negative id is an int64: "has type Int64, which the layout does not allow" sent ops looking for a wrong
    type. Ids no other test uses: each task and field is warned of once per process."""
    with caplog.at_level(logging.WARNING, logger="models.stored_task"):
        assert readable_task({"_id": Int64(-987_654_321), "status": "READY"}) is None
        assert readable_task({"_id": 98_765.5, "status": "READY"}) is None
    warnings = [record.getMessage() for record in caplog.records]
    assert any(
        "-987654321: stored _id is no task id (an int64 > 0); the document is served as no task" in warning
        for warning in warnings
    ), warnings
    assert any("98765.5: stored _id is no task id (an int64 > 0)" in warning for warning in warnings), warnings
