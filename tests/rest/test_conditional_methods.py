"""If-Match and If-None-Match on every /tracking operation (RFC 9110 section 13), on the real MongoDB: a table of
conditions against every method and both formats, the answers' ETags per representation, list answers, creates,
and a property test of the gateway's answers against a plain model of RFC 9110 section 13.2.2's order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import assert_link_invariant
from tests.unit.test_preconditions import Field, rfc_status

JSON = "application/json"
XML = "application/xml"
STALE = '"00000000000000000000000000000000"'


@pytest.fixture
async def http(client):
    return client


@dataclass(frozen=True)
class Operation:
    """One /tracking operation on task `anchor` (whose ETags its conditions name)."""

    method: str
    path: str
    anchor: int
    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None

    @property
    def safe(self) -> bool:
        return self.method in ("GET", "HEAD")

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.params or ''}"


OPERATIONS = [
    Operation("GET", "/tracking/task/1", 1),
    Operation("HEAD", "/tracking/task/1", 1),
    Operation("PUT", "/tracking/task/1", 1, body={"status": "CHANGED"}),
    Operation("DELETE", "/tracking/task/1", 1),
    Operation("PUT", "/tracking/task/1/next", 1, params={"nextTaskId": 3}),
    Operation("DELETE", "/tracking/task/1/next", 1, params={"nextTaskId": 2}),
    Operation("PUT", "/tracking/task/2/previous", 2, params={"prevTaskId": 3}),
    Operation("DELETE", "/tracking/task/2/previous", 2, params={"prevTaskId": 1}),
]
SUCCESS = {"GET": 200, "HEAD": 200, "PUT": 200, "DELETE": 204}


async def reset(http, raw_db) -> None:
    """Tasks 1 -> 2 in job j, and 3 unlinked."""
    await raw_db.tasks.delete_many({})
    tasks = [{"id": task_id, "job-id": "j"} for task_id in (1, 2, 3)]
    response = await http.post("/tracking/task", json={"tasks": tasks})
    assert response.status_code == 200, response.text
    linked = await http.put("/tracking/task/1/next", params={"nextTaskId": 2})
    assert linked.status_code == 200, linked.text


async def etags(http, task_id: int) -> dict[str, str]:
    """The task's current ETag in each format, as GET answers them."""
    tags = {}
    for accept in (JSON, XML):
        response = await http.get(f"/tracking/task/{task_id}", headers={"Accept": accept})
        assert response.status_code == 200, response.text
        tags[accept] = response.headers["etag"]
    return tags


async def snapshot(raw_db) -> list[dict[str, Any]]:
    return await raw_db.tasks.find({}).sort("_id").to_list(None)


async def send(http, operation: Operation, accept: str, headers: dict[str, str]):
    return await http.request(
        operation.method,
        operation.path,
        params=operation.params,
        json=operation.body,
        headers={"Accept": accept, **headers},
    )


def resolve(symbol: str | None, tags: dict[str, str], accept: str) -> str | None:
    """A condition of the table as a field value: `same` is the ETag of the representation the request
    negotiates, `other` that of the other format, `stale` a version the task never had."""
    if symbol is None:
        return None
    other = XML if accept == JSON else JSON
    for name, value in (("same", tags[accept]), ("other", tags[other]), ("stale", STALE)):
        symbol = symbol.replace(name, value)
    return symbol


# (If-Match, If-None-Match) -> status for a read, whether a write is performed (else 412)
TABLE = [
    (None, None, 200, True),
    ("same", None, 200, True),
    ("other", None, 412, True),  # a read compares with the representation it answers; a write with any
    (f'"x", {"same"}', None, 200, True),
    ("*", None, 200, True),
    ("stale", None, 412, False),
    ("W/same", None, 412, False),  # If-Match compares strongly: a weak tag never matches
    (None, "same", 304, False),
    (None, "W/same", 304, False),  # If-None-Match compares weakly
    (None, "*", 304, False),
    (None, "other", 200, False),  # a write must not happen over any representation's current version
    (None, "stale", 200, True),
    ("same", "stale", 200, True),
    ("stale", "same", 412, False),  # If-Match is evaluated first
    ("same", "same", 304, False),
    ("*", "*", 304, False),
]


@pytest.mark.parametrize(("if_match", "if_none_match", "read_status", "write_performed"), TABLE)
async def test_every_condition_on_every_operation(http, raw_db, if_match, if_none_match, read_status, write_performed):
    for operation in OPERATIONS:
        for accept in (JSON, XML):
            await reset(http, raw_db)
            tags = await etags(http, operation.anchor)
            headers = {
                name: value
                for name, value in (
                    ("If-Match", resolve(if_match, tags, accept)),
                    ("If-None-Match", resolve(if_none_match, tags, accept)),
                )
                if value is not None
            }
            before = await snapshot(raw_db)
            response = await send(http, operation, accept, headers)
            what = f"{operation} {accept} {headers}"
            expected = read_status if operation.safe else (SUCCESS[operation.method] if write_performed else 412)
            assert response.status_code == expected, f"{what}: {response.status_code} {response.text}"
            if response.status_code == 412:
                assert await snapshot(raw_db) == before, what
                assert response.headers["etag"] == tags[accept], what  # the current ETag, as negotiated
                if operation.method != "HEAD":
                    assert "<code>412</code>" in response.text if accept == XML else response.json()["code"] == 412
            elif response.status_code == 304:
                assert response.content == b"", what
                assert response.headers["etag"] == tags[accept], what
            elif not operation.safe:
                assert await snapshot(raw_db) != before, what
            await assert_link_invariant(raw_db)


async def test_a_write_accepts_the_etag_of_the_representation_it_was_read_in(http, raw_db):
    await reset(http, raw_db)
    read_as_xml = await http.get("/tracking/task/1", headers={"Accept": XML})
    text_xml = await http.get("/tracking/task/1", headers={"Accept": "text/xml"})
    as_json = await http.get("/tracking/task/1")
    assert len({read_as_xml.headers["etag"], text_xml.headers["etag"], as_json.headers["etag"]}) == 3
    written = await http.put(
        "/tracking/task/1", json={"status": "BY-XML"}, headers={"If-Match": read_as_xml.headers["etag"]}
    )
    assert written.status_code == 200, written.text
    assert written.headers["etag"] == (await http.get("/tracking/task/1")).headers["etag"]  # PUT answered JSON
    again = await http.put(
        "/tracking/task/1",
        content=b"<task><status>BY-TEXT-XML</status></task>",
        headers={"Content-Type": XML, "Accept": XML, "If-Match": text_xml.headers["etag"]},  # stale now
    )
    assert again.status_code == 412
    assert again.headers["etag"] == (await http.get("/tracking/task/1", headers={"Accept": XML})).headers["etag"]
    assert (await raw_db.tasks.find_one({"_id": 1}))["status"] == "BY-XML"


async def test_list_answers_have_their_own_etag_and_conditions(http, raw_db):
    await reset(http, raw_db)
    for path in ("/tracking/task/1/next", "/tracking/task/2/previous", "/tracking/j/task/roots"):
        first, second = [await http.get(path, headers={"Accept": accept}) for accept in (JSON, XML)]
        tag = first.headers["etag"]
        assert tag.startswith('"') and tag != second.headers["etag"], path
        assert (await http.get(path)).headers["etag"] == tag  # stable while nothing changes
        cached = await http.get(path, headers={"If-None-Match": tag})
        assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", tag), path
        refused = await http.get(path, headers={"If-Match": STALE})
        assert (refused.status_code, refused.headers["etag"]) == (412, tag), path
        assert (await http.get(path, headers={"If-Match": tag})).status_code == 200
    before = (await http.get("/tracking/task/1/next")).headers["etag"]
    await http.put("/tracking/task/2", json={"status": "RUNNING"})
    assert (await http.get("/tracking/task/1/next")).headers["etag"] != before  # a listed task changed


async def test_a_create_has_no_current_version_to_match(http, raw_db):
    refused = await http.post("/tracking/task", json={"tasks": [{"id": 9}]}, headers={"If-Match": "*"})
    assert refused.status_code == 412
    assert "If-Match" in refused.json()["message"]
    assert await raw_db.tasks.count_documents({}) == 0
    created = await http.post("/tracking/task", json={"tasks": [{"id": 9}]}, headers={"If-None-Match": "*"})
    assert created.status_code == 200
    assert await raw_db.tasks.count_documents({}) == 1


async def test_conditions_on_a_missing_task_are_ignored_for_its_404(http, raw_db):
    await reset(http, raw_db)
    for operation in OPERATIONS:
        missing = replace(operation, path=operation.path.replace("/1", "/99").replace("/2/", "/99/"), anchor=99)
        for headers in ({"If-Match": STALE}, {"If-None-Match": "*"}, {"If-Match": "*"}):
            response = await send(http, missing, JSON, headers)
            assert response.status_code == 404, f"{missing} {headers}"


# ---- the order of evaluation, as a property: whatever conditions a caller sends, the gateway answers what RFC
# 9110 section 13.2.2 says, and a refusal changes nothing.

SYMBOL = st.sampled_from(["json", "xml", "stale"])
CONDITION = st.one_of(
    st.none(),
    st.just(Field(True, ())),
    st.lists(st.tuples(st.booleans(), SYMBOL), min_size=1, max_size=3).map(lambda tags: Field(False, tuple(tags))),
)


def concrete(field: Field, tags: dict[str, str]) -> Field:
    names = {"json": tags[JSON], "xml": tags[XML], "stale": STALE}
    return Field(field.star, tuple((weak, names[symbol]) for weak, symbol in field.tags))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    operation=st.sampled_from(OPERATIONS),
    accept=st.sampled_from([JSON, XML]),
    if_match=CONDITION,
    if_none_match=CONDITION,
)
async def test_the_gateway_evaluates_conditions_in_rfc_9110_order(
    http, raw_db, operation, accept, if_match, if_none_match
):
    await reset(http, raw_db)
    tags = await etags(http, operation.anchor)
    given_match = concrete(if_match, tags) if if_match else None
    given_none_match = concrete(if_none_match, tags) if if_none_match else None
    headers = {
        name: field.header()
        for name, field in (("If-Match", given_match), ("If-None-Match", given_none_match))
        if field is not None
    }
    # A read's selected representation is the one it answers; a write's conditions may name any of the task's.
    current = [tags[accept]] if operation.safe else list(tags.values())
    expected = rfc_status(given_match, given_none_match, current, operation.safe)
    before = await snapshot(raw_db)
    response = await send(http, operation, accept, headers)
    assert response.status_code == (SUCCESS[operation.method] if expected == 200 else expected), response.text
    if expected != 200 or operation.safe:
        assert await snapshot(raw_db) == before


async def test_a_malformed_condition_is_400_naming_it_on_every_operation(http, raw_db):
    await reset(http, raw_db)
    before = await snapshot(raw_db)
    for operation in OPERATIONS:
        for task in (operation, replace(operation, path=operation.path.replace("/1", "/99").replace("/2/", "/99/"))):
            for name in ("If-Match", "If-None-Match"):
                response = await send(http, task, JSON, {name: "no-quotes"})
                assert response.status_code == 400, f"{task} {name}"
                if task.method != "HEAD":
                    assert name in response.json()["message"]
    assert await snapshot(raw_db) == before
