"""`tracking-gateway check` on ids a tool wrote off the layout (an int64 > 0), on the real MongoDB: a task id of
another type (served as that id) and a value that is no task id (served as nothing) are reported apart, each
under a name that is true of it: -5 is an int64, and no task id."""

from __future__ import annotations

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from models.check_ids import NO_TASK_IDS, NOT_INT64_IDS
from tests.helpers import AUTH, gateway_app, lifespan_client


def finding_line(lines: list[str], finding: str) -> str:
    [line] = [line for line in lines if line.startswith(f"{finding}: ")]
    return line


async def test_ids_are_reported_as_task_ids_of_another_type_or_as_no_task_ids(store, raw_db, tmp_path):
    await raw_db.tasks.insert_many(
        [
            {"_id": Int64(-5), "nexts": [], "previous": []},
            {"_id": 2.5, "nexts": [], "previous": []},
            {"_id": "x", "nexts": [], "previous": []},
            {"_id": Decimal128("12"), "nexts": [], "previous": []},
            {"_id": 7, "nexts": [], "previous": [Int64(9)]},  # an int32, as a tool's driver may write it
            {"_id": 8.0, "nexts": [], "previous": []},  # a double, as mongosh writes a number
            {"_id": Int64(9), "nexts": [7, Int64(-3), "x"], "previous": []},
        ],
        bypass_document_validation=True,
    )
    lines = (await store.check()).lines()
    off_type = finding_line(lines, NOT_INT64_IDS)
    assert off_type.startswith(f"{NOT_INT64_IDS}: 3 (")
    for example in ("7: _id has type int", "8.0: _id has type float", "9: nexts holds 7"):
        assert example in off_type, (example, off_type)
    assert "-5" not in off_type and "2.5" not in off_type  # neither is a task id of any type
    no_task = finding_line(lines, NO_TASK_IDS)
    assert no_task.startswith(f"{NO_TASK_IDS}: 5 (")
    for example in ("-5: _id", "2.5: _id", "'x': _id", "Decimal128('12'): _id", "9: nexts holds -3, 'x', left out"):
        assert example in no_task, (example, no_task)
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app, AUTH) as http:  # what the findings say readers do
        assert (await http.get("/tracking/task/7")).json()["id"] == 7
        assert (await http.get("/tracking/task/8")).json()["id"] == 8
        assert [task["id"] for task in (await http.get("/tracking/task/9/next")).json()["tasks"]] == [7]
