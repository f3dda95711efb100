"""Conditional requests (RFC 9110 section 13) on the real MongoDB: ETags on GET and PUT, 304 on If-None-Match,
412 with the Error body on a stale If-Match (and nothing changed), lost updates impossible, GraphQL's ifMatch."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import assert_link_invariant

TOKEN = "conditional-token"


@pytest.fixture
async def http(gateway_client):
    return await gateway_client({"X-Auth-Token": TOKEN}, api_tokens=TOKEN)


async def create(http, *tasks: dict) -> None:
    response = await http.post("/tracking/task", json={"tasks": list(tasks)})
    assert response.status_code == 200, response.text


async def etag(http, task_id: int) -> str:
    response = await http.get(f"/tracking/task/{task_id}")
    assert response.status_code == 200, response.text
    tag = response.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34
    return tag


async def test_get_and_put_carry_the_etag_and_every_change_changes_it(http, raw_db):
    await create(http, {"id": 1, "job-id": "j", "status": "READY"}, {"id": 2, "job-id": "j"})
    first = await etag(http, 1)
    assert await etag(http, 1) == first  # stable while nothing changes
    xml = await http.get("/tracking/task/1", headers={"Accept": "application/xml"})
    assert xml.headers["etag"] == first[:-1] + '-xml"'  # each representation has its own strong ETag
    updated = await http.put("/tracking/task/1", json={"status": "RUNNING"})
    assert updated.status_code == 200
    assert updated.headers["etag"] != first
    assert updated.headers["etag"] == await etag(http, 1)
    before_link = updated.headers["etag"]
    assert (await http.put("/tracking/task/1/next", params={"nextTaskId": 2})).status_code == 200
    after_link = await etag(http, 1)
    assert after_link != before_link
    await raw_db.tasks.update_one({"_id": 1}, {"$set": {"name": "set by a tool"}})  # an ops tool's write
    assert await etag(http, 1) != after_link


async def test_a_navigable_tasks_etag_changes_with_the_next_tasks_it_shows(http, raw_db):
    """A navigable task's answer shows its next tasks in full: its ETag kept the value of the task alone, so a
    cache revalidating it got 304 and kept showing a next task's old status."""
    parent = {"id": 1, "type": "navigable-execution-task", "nexts": {"tasks": [{"id": 2, "status": "OLD"}]}}
    await create(http, parent)
    first = await etag(http, 1)
    assert (await http.put("/tracking/task/2", json={"status": "NEW"})).status_code == 200
    second = await etag(http, 1)
    assert second != first
    for accept in ("application/json", "application/xml"):
        revalidated = await http.get("/tracking/task/1", headers={"Accept": accept, "If-None-Match": first})
        assert revalidated.status_code == 200 and "NEW" in revalidated.text, (accept, revalidated.status_code)
    await raw_db.tasks.update_one({"_id": 2}, {"$set": {"name": "set by a tool"}})  # an ops tool's write
    third = await etag(http, 1)
    assert third != second
    stale = await http.put("/tracking/task/1", json={"status": "RUNNING"}, headers={"If-Match": second})
    assert stale.status_code == 412 and stale.headers["etag"] == third, stale.text
    assert (await raw_db.tasks.find_one({"_id": 1})).get("status") is None, "a refused write changes nothing"
    current = await http.put("/tracking/task/1", json={"status": "RUNNING"}, headers={"If-Match": third})
    assert current.status_code == 200 and current.headers["etag"] == await etag(http, 1)
    for query in ('{ task(id: "1") { etag } }', '{ task(id: "1") { etag @include(if: true) } }'):  # both paths
        answer = (await http.post("/graphql", json={"query": query})).json()
        assert answer["data"] == {"task": {"etag": current.headers["etag"]}}, query


async def test_if_none_match_answers_304(http):
    await create(http, {"id": 1, "status": "READY"})
    tag = await etag(http, 1)
    for value in (tag, f'"other", {tag}', f"W/{tag}", "*"):
        response = await http.get("/tracking/task/1", headers={"If-None-Match": value})
        assert response.status_code == 304, value
        assert response.headers["etag"] == tag
        assert response.content == b""
    response = await http.get("/tracking/task/1", headers={"If-None-Match": '"other"'})
    assert response.status_code == 200
    assert response.json()["status"] == "READY"


async def test_stale_if_match_is_412_and_changes_nothing(http, raw_db):
    await create(http, {"id": 1, "job-id": "j", "status": "READY"}, {"id": 2, "job-id": "j"})
    await http.put("/tracking/task/1/next", params={"nextTaskId": 2})
    stale = await etag(http, 1)
    await http.put("/tracking/task/1", json={"status": "RUNNING"})
    stored = await raw_db.tasks.find_one({"_id": 1})
    condition = {"If-Match": stale}
    attempts = [
        http.put("/tracking/task/1", json={"status": "DONE"}, headers=condition),
        http.put("/tracking/task/1", json={"job-id": "k"}, headers=condition),
        http.delete("/tracking/task/1", headers=condition),
        http.delete("/tracking/task/1/next", params={"nextTaskId": 2}, headers=condition),
        http.put("/tracking/task/2/previous", params={"prevTaskId": 1}, headers={"If-Match": '"nope"'}),
        http.delete("/tracking/task/2/previous", params={"prevTaskId": 1}, headers={"If-Match": 'W/"x"'}),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 412, response.text
        error = response.json()
        assert error["code"] == 412
        assert "has changed" in error["message"]
    assert await raw_db.tasks.find_one({"_id": 1}) == stored
    await assert_link_invariant(raw_db)


async def test_matching_if_match_writes(http, raw_db):
    await create(http, {"id": 1, "job-id": "j"}, {"id": 2, "job-id": "j"}, {"id": 3})
    updated = await http.put("/tracking/task/1", json={"status": "RUNNING"}, headers={"If-Match": await etag(http, 1)})
    assert updated.status_code == 200
    assert updated.json()["status"] == "RUNNING"
    listed = f'"x", {await etag(http, 1)}'
    moved = await http.put("/tracking/task/1", json={"job-id": "k"}, headers={"If-Match": listed})
    assert moved.status_code == 200
    assert moved.json()["job-id"] == "k"
    linked = await http.put("/tracking/task/1/next", params={"nextTaskId": 2}, headers={"If-Match": "*"})
    assert linked.status_code == 200
    unlinked = await http.delete("/tracking/task/2/previous", params={"prevTaskId": 1}, headers={"If-Match": "*"})
    assert unlinked.status_code == 204
    deleted = await http.delete("/tracking/task/3", headers={"If-Match": await etag(http, 3)})
    assert deleted.status_code == 204
    assert await raw_db.tasks.count_documents({}) == 2
    await assert_link_invariant(raw_db)


async def test_conditions_on_a_missing_task_are_404_and_bad_ones_400(http):
    missing = await http.put("/tracking/task/9", json={"status": "X"}, headers={"If-Match": "*"})
    assert missing.status_code == 404
    assert (await http.get("/tracking/task/9", headers={"If-None-Match": "*"})).status_code == 404
    await create(http, {"id": 1})
    for value in ("abc", '"a" "b"', "W/abc", ","):
        response = await http.put("/tracking/task/1", json={"status": "X"}, headers={"If-Match": value})
        assert response.status_code == 400, value
        assert "If-Match" in response.json()["message"]
    assert (await http.get("/tracking/task/1")).json().get("status") is None


async def test_two_clients_with_the_same_etag_one_wins(http, raw_db):
    for round_ in range(5):
        await create(http, {"id": 100 + round_, "status": "READY"})
        tag = await etag(http, 100 + round_)
        answers = await asyncio.gather(
            *(
                http.put(f"/tracking/task/{100 + round_}", json={"status": f"BY-{who}"}, headers={"If-Match": tag})
                for who in ("A", "B")
            )
        )
        statuses = sorted(response.status_code for response in answers)
        assert statuses == [200, 412], [r.text for r in answers]
        winner = next(response for response in answers if response.status_code == 200)
        stored = await raw_db.tasks.find_one({"_id": 100 + round_})
        assert stored["status"] == winner.json()["status"]


async def test_graphql_etag_and_if_match(http):
    await create(http, {"id": 1, "job-id": "j", "status": "READY"}, {"id": 2, "job-id": "j"})

    async def gql(query: str, variables: dict | None = None) -> dict:
        response = await http.post("/graphql", json={"query": query, "variables": variables or {}})
        assert response.status_code == 200, response.text
        return response.json()

    tag = (await gql('{ task(id: "1") { etag } }'))["data"]["task"]["etag"]
    assert tag == await etag(http, 1)
    created = await gql('mutation { createTasks(tasks: [{id: "7", jobId: "j"}]) { etag } }')
    assert created["data"]["createTasks"][0]["etag"] == await etag(http, 7)
    update = 'mutation($m: String) { updateTask(id: "1", patch: {status: "DONE"}, ifMatch: $m) { status etag } }'
    stale = await gql(update, {"m": '"stale"'})
    assert stale["errors"][0]["extensions"]["code"] == "PRECONDITION_FAILED"
    done = await gql(update, {"m": tag})
    assert done["data"]["updateTask"]["status"] == "DONE"
    assert done["data"]["updateTask"]["etag"] == await etag(http, 1) != tag
    for mutation in (
        'addNexts(id: "1", nextIds: ["2"], ifMatch: $m) { id }',
        'removeNexts(id: "1", nextIds: ["2"], ifMatch: $m)',
        'addPrevious(id: "2", previousIds: ["1"], ifMatch: $m) { id }',
        'removePrevious(id: "2", previousIds: ["1"], ifMatch: $m)',
        'deleteTask(id: "1", ifMatch: $m)',
    ):
        answer = await gql(f"mutation($m: String) {{ {mutation} }}", {"m": tag})
        assert answer["errors"][0]["extensions"]["code"] == "PRECONDITION_FAILED", mutation
    as_xml = (await http.get("/tracking/task/2", headers={"Accept": "application/xml"})).headers["etag"]
    assert as_xml != (await gql('{ task(id: "2") { etag } }'))["data"]["task"]["etag"]  # GraphQL shows JSON's
    by_xml_tag = await gql(
        'mutation($m: String) { updateTask(id: "2", patch: {status: "X"}, ifMatch: $m) { status } }', {"m": as_xml}
    )
    assert by_xml_tag["data"]["updateTask"]["status"] == "X"  # ifMatch takes any representation's ETag
    bad = await gql('mutation { deleteTask(id: "1", ifMatch: "no quotes") }')
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ifMatch" in bad["errors"][0]["message"]
    assert (await gql('mutation { deleteTask(id: "1", ifMatch: "*") }'))["data"]["deleteTask"] is True
