"""Restore keeps the graph rules on the real MongoDB: a tampered archive (a cycle of its own or through stored
tasks, ids that are no int64 > 0, an id twice, link fields off the layout) is refused with one line naming the
file, line and problem, and nothing is written; one-sided links inside an archive are completed on both sides.
A property test checks the cycle rule against a plain model of the graph."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import InvalidOperation
from models.archive import JobArchive, read_archive, write_archive
from tests.helpers import assert_link_invariant, reachable, task
from tests.models.test_lifecycle import cli


def doc(task_id: Any, nexts: Any = (), previous: Any = (), **fields: Any) -> dict[str, Any]:
    """A task as an archive holds it: ids as given (Int64 for plain ints), the layout's link arrays."""
    as_id = lambda value: Int64(value) if type(value) is int else value  # noqa: E731
    links = {
        name: [as_id(i) for i in value] if isinstance(value, list | tuple) else value
        for name, value in (("nexts", nexts), ("previous", previous))
    }
    return {"_id": as_id(task_id), "job-id": "j", "status": "NEW", **links, **fields}


def archive_file(tmp_path: Path, *tasks: dict[str, Any], name: str = "j.jsonl") -> Path:
    path = tmp_path / name
    write_archive(JobArchive("j", list(tasks), []), path)
    return path


async def everything(raw_db) -> dict[str, list[bytes]]:
    """Every stored document of the collections a restore writes, as BSON."""
    return {
        name: [bson.encode(each) async for each in raw_db[name].find({}).sort("_id")]
        for name in ("tasks", "task_history", "counters")
    }


async def refused_restore(store, raw_db, path: Path) -> str:
    before = await everything(raw_db)
    with pytest.raises(InvalidOperation) as refused:
        await store.lifecycle().restore(read_archive(path))
    assert await everything(raw_db) == before
    assert "\n" not in refused.value.message
    return refused.value.message


async def test_an_archive_whose_own_links_close_a_cycle_is_refused(store, raw_db, tmp_path):
    path = archive_file(tmp_path, doc(1, [2], [3]), doc(2, [3], [1]), doc(3, [1], [2]), doc(4))
    message = await refused_restore(store, raw_db, path)
    assert message == f"{path}: restoring would close a cycle: 1 -> 2 -> 3 -> 1; nothing was restored"


async def test_a_cycle_stated_by_one_side_only_is_refused_too(store, raw_db, tmp_path):
    # 2 -> 1 is written only in 1.previous: completing it would close 1 -> 2 -> 1.
    path = archive_file(tmp_path, doc(1, [2], [2]), doc(2, [], [1]))
    message = await refused_restore(store, raw_db, path)
    assert "restoring would close a cycle: 1 -> 2 -> 1" in message


async def test_a_cycle_through_stored_tasks_names_them(store, raw_db, tmp_path):
    await store.create_tasks(
        [task(id=10, job_id="live", nexts={"tasks": [{"id": 11, "nexts": {"tasks": [{"id": 12}]}}]})]
    )
    path = archive_file(tmp_path, doc(1, [2]), doc(2, [10], [1]), doc(3, [1], [12]))
    message = await refused_restore(store, raw_db, path)
    assert "restoring would close a cycle: 1 -> 2 -> 10 -> 11 -> 12 -> 3 -> 1;" in message


async def test_a_stored_link_to_a_restored_id_counts_for_cycles(store, raw_db, tmp_path):
    """A tool left 11.nexts naming task 1 after removing it: restoring 1 brings that link back to life."""
    await store.create_tasks([task(id=10, nexts={"tasks": [{"id": 11}]})])
    await raw_db.tasks.update_one({"_id": 11}, {"$push": {"nexts": Int64(1)}})
    path = archive_file(tmp_path, doc(1, [10]))
    assert "restoring would close a cycle: 1 -> 10 -> 11 -> 1;" in await refused_restore(store, raw_db, path)


async def test_a_cycle_among_stored_tasks_only_does_not_refuse_a_restore(store, raw_db, tmp_path):
    """A cycle a tool wrote downstream is `check`'s to report: the restored links close none."""
    await store.create_tasks([task(id=10, nexts={"tasks": [{"id": 11}]})])
    await raw_db.tasks.update_one({"_id": 11}, {"$push": {"nexts": Int64(10)}})
    await raw_db.tasks.update_one({"_id": 10}, {"$push": {"previous": Int64(11)}})
    report = await store.lifecycle().restore(read_archive(archive_file(tmp_path, doc(1, [10]), doc(2, [], [11]))))
    assert report.tasks == 2
    assert (await raw_db.tasks.find_one({"_id": 10}))["previous"] == [11, 1]
    assert (await raw_db.tasks.find_one({"_id": 11}))["nexts"] == [10, 2]


ID_PROBLEMS = [
    ("7", "_id '7' (a string) is no task id"),
    (Int64(0), "_id 0 (an int64) is no task id"),
    (Int64(-5), "_id -5 (an int64) is no task id"),
    (7.0, "_id 7.0 (a double) is no task id"),
    (True, "_id True (a boolean) is no task id"),
    (None, "_id None (null) is no task id"),
    (bson.ObjectId("0123456789ab0123456789ab"), "(of type ObjectId) is no task id"),
]


@pytest.mark.parametrize(("bad_id", "says"), ID_PROBLEMS)
async def test_ids_that_are_no_int64_above_zero_are_refused(store, raw_db, tmp_path, bad_id, says):
    path = archive_file(tmp_path, doc(1), doc(bad_id))
    message = await refused_restore(store, raw_db, path)
    assert message.startswith(f"{path}:3: ") and says in message, message
    assert message.endswith("; nothing was restored")


async def test_ids_written_as_plain_json_numbers_are_refused_naming_the_form(store, raw_db, tmp_path):
    path = archive_file(tmp_path, doc(1))
    header, line = path.read_text().splitlines()
    for plain, says in (("7", '7 (a plain number: the layout wants {"$numberLong": "7"})'), (str(2**64), "past int64")):
        path.write_text(f"{header}\n{line}\n" + line.replace('{"$numberLong": "1"}', plain, 1) + "\n")
        path.write_text(path.read_text().replace('"tasks": 1', '"tasks": 2'))
        message = await refused_restore(store, raw_db, path)
        assert message.startswith(f"{path}:3: _id ") and says in message, message


async def test_an_id_twice_is_refused_with_both_lines(store, raw_db, tmp_path):
    path = archive_file(tmp_path, doc(1), doc(5), doc(6), doc(5, [6]))
    message = await refused_restore(store, raw_db, path)
    assert message == f"{path}:5: task 5 appears twice in the archive (first at {path}:3); nothing was restored"


@pytest.mark.parametrize(
    ("tampered", "says"),
    [
        (doc(2, "1"), "task 2: nexts is '1' (a string), not an array of task ids"),
        (doc(2, None), "task 2: nexts is None (null), not an array of task ids"),
        ({"_id": Int64(2), "previous": []}, "task 2: nexts is missing, not an array of task ids"),
        (doc(2, [], [Int64(1), "3"]), "task 2: previous holds '3' (a string), no task id (an int64 > 0)"),
        (doc(2, [Int64(0)]), "task 2: nexts holds 0 (an int64), no task id (an int64 > 0)"),
        (doc(2, [1.5]), "task 2: nexts holds 1.5 (a double), no task id (an int64 > 0)"),
        (doc(2, [2]), "task 2: nexts links the task to itself"),
        (doc(2, [1, 1]), "task 2: nexts names task 1 twice"),
    ],
)
async def test_link_fields_off_the_layout_are_refused(store, raw_db, tmp_path, tampered, says):
    path = archive_file(tmp_path, doc(1), tampered)
    message = await refused_restore(store, raw_db, path)
    assert message == f"{path}:3: {says}; nothing was restored"


def entry(entry_id: object, task_id: int = 1) -> dict[str, Any]:
    return {"_id": entry_id, "task": Int64(task_id), "kind": "UPDATED", "fields": []}


async def test_a_history_entry_twice_or_without_id_is_refused(store, raw_db, tmp_path):
    path = tmp_path / "history.jsonl"
    write_archive(JobArchive("j", [doc(1)], [entry("h1"), entry("h2"), entry("h1")]), path)
    message = await refused_restore(store, raw_db, path)
    assert (
        message
        == f"{path}:5: history entry 'h1' appears twice in the archive (first at {path}:3); nothing was restored"
    )
    write_archive(JobArchive("j", [doc(1)], [entry("h1"), {"task": Int64(1)}]), path)
    assert await refused_restore(store, raw_db, path) == f"{path}:4: a history entry without _id; nothing was restored"


async def test_a_document_mongodb_refuses_is_named_not_a_traceback(store, raw_db, tmp_path):
    too_large = doc(2, blob=bson.Binary(b"x" * (16 * 1024 * 1024)))
    path = archive_file(tmp_path, doc(1), too_large)
    message = await refused_restore(store, raw_db, path)
    assert message.startswith(f"{path}:3: MongoDB refused the document: ") and message.endswith("nothing was restored")
    await raw_db.task_history.insert_one(entry({"a": 1}, 5))  # a document _id, stored already: left as it is
    path = tmp_path / "entries.jsonl"
    write_archive(JobArchive("j", [doc(5)], [entry({"a": 1}, 5), entry({"a": 2}, 5)]), path)
    report = await store.lifecycle().restore(read_archive(path))
    assert (report.tasks, report.history, report.history_present) == (1, 1, 1)


async def test_an_archive_in_memory_names_tasks_by_rank(store, raw_db):
    before = await everything(raw_db)
    with pytest.raises(InvalidOperation, match=r"^the archive, task #2: _id '2' \(a string\)"):
        await store.lifecycle().restore(JobArchive("j", [doc(1), doc("2")], []))
    assert await everything(raw_db) == before


async def test_one_sided_links_inside_the_archive_are_completed(store, raw_db, tmp_path):
    # 1 -> 2 named by 1 only, 3 -> 2 named by 2 only; 1 -> 3 by both.
    path = archive_file(tmp_path, doc(1, [2, 3]), doc(2, [], [3]), doc(3, [], [1]), doc(4, [], [], note="as is"))
    report = await store.lifecycle().restore(read_archive(path))
    assert report.links_completed == [(1, 2), (3, 2)]
    assert "links one side of which the archive lacked were completed: 1 -> 2, 3 -> 2" in list(report.lines())
    assert await assert_link_invariant(raw_db) == {(1, 2), (1, 3), (3, 2)}
    restored = {each["_id"]: each async for each in raw_db.tasks.find({})}
    assert restored[2]["previous"] == [3, 1] and all(type(i) is Int64 for i in restored[2]["previous"])
    assert restored[3]["nexts"] == [2]
    assert bson.encode(restored[4]) == bson.encode(doc(4, [], [], note="as is"))  # untouched ones byte for byte


@pytest.mark.slow
async def test_the_cli_refuses_a_tampered_archive_with_one_line(store, raw_db, mongo_uri, tmp_path):
    cases = {
        "twice.jsonl": (doc(1), doc(1)),  # was a 44-line traceback
        "cycle.jsonl.gz": (doc(1, [2], [2]), doc(2, [1], [1])),
        "string.jsonl": (doc("x"),),
    }
    before = await everything(raw_db)
    for name, tasks in cases.items():
        path = archive_file(tmp_path, *tasks, name=name)
        result = await asyncio.to_thread(cli, mongo_uri, "restore", str(path))
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"tracking-gateway: {path}"), result.stderr
        assert lines[0].endswith("nothing was restored"), result.stderr
        assert result.stdout == ""
    assert await everything(raw_db) == before


# ---- the cycle rule against a plain model ------------------------------------------------------------------------

ARCHIVED = [1, 2, 3, 4]
STORED = [10, 11, 12]
EDGE = st.tuples(st.sampled_from(ARCHIVED + STORED), st.sampled_from(ARCHIVED + STORED)).filter(lambda e: e[0] != e[1])


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    archive_edges=st.lists(st.tuples(EDGE, st.sampled_from(["both", "nexts", "previous"])), max_size=8),
    stored_edges=st.lists(
        st.tuples(st.sampled_from(STORED), st.sampled_from(STORED)).filter(lambda e: e[0] < e[1]), max_size=3
    ),
)
async def test_restore_refuses_exactly_the_archives_that_close_a_cycle(store, raw_db, archive_edges, stored_edges):
    """Archive tasks 1-4 link among themselves and to stored tasks 10-12 (which link forward only), each link
    named by both sides or one: restore refuses exactly when the links, completed, hold a cycle through an
    archived task, and otherwise leaves every link two-sided."""
    await raw_db.tasks.delete_many({})
    await store.create_tasks([task(id=i) for i in STORED])
    for a, b in set(stored_edges):
        await store.add_nexts(a, [b])
    links: dict[int, tuple[list[int], list[int]]] = {i: ([], []) for i in ARCHIVED}
    edges: set[tuple[int, int]] = set(stored_edges)
    for (a, b), side in archive_edges:
        if a not in links and b not in links:
            continue  # between stored tasks: no archive names it
        edges.add((a, b))
        # Each link is named by the side `side` says when that task is archived, else by the other one.
        by_source = a in links and (side != "previous" or b not in links)
        by_target = b in links and (side != "nexts" or a not in links)
        if by_source and b not in links[a][0]:
            links[a][0].append(b)
        if by_target and a not in links[b][1]:
            links[b][1].append(a)
    archive = JobArchive("j", [doc(i, nexts, previous) for i, (nexts, previous) in links.items()], [])
    closes = any(reachable(edges, b, a) for a, b in edges)  # the stored links alone hold none
    before = await everything(raw_db)
    try:
        await store.lifecycle().restore(archive)
    except InvalidOperation as refused:
        assert closes, refused.message
        assert "restoring would close a cycle" in refused.message
        assert await everything(raw_db) == before
        return
    assert not closes, edges
    assert await assert_link_invariant(raw_db) == edges
