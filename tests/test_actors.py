"""Who changed what: every change made through the gateway records its caller in the task history (GraphQL
`TaskChange.actor`), a change a tool makes directly in MongoDB records none (never the previous writer's), the
stored task names its last writer (`changed-by`), the access log line names the caller and /metrics counts
requests per token name."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from bson.int64 import Int64

from gateway.observability import CALLER_REQUESTS, log_handler
from models import HistoryWriter
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client, served, writing_history

HISTORY = '{ taskHistory(id: "%s") { kind changedFields actor actorIssuer } }'


async def history(http, task_id: int) -> list[dict[str, Any]]:
    answer = await http.post("/graphql", json={"query": HISTORY % task_id})
    return list(answer.json()["data"]["taskHistory"])


async def test_every_change_through_the_gateway_names_its_caller_and_tools_none(store, raw_db, tmp_path):
    secret = await store.named_tokens().create("ci", write=True)
    ci = {"X-Auth-Token": secret}
    app, _ = gateway_app(store, tmp_path)
    writer = HistoryWriter(store._database, "actors", full_document=store.full_document, flush_s=0.1)
    async with writing_history(raw_db, writer), lifespan_client(app, AUTH) as http:
        created = await http.post("/tracking/task", json={"tasks": [{"job-id": "j", "name": "a"}, {"job-id": "j"}]})
        first, second = (task["id"] for task in created.json()["tasks"])
        mutation = 'mutation { updateTask(id: "FIRST", patch: {status: "RUNNING"}) { id } }'.replace(
            "FIRST", str(first)
        )
        assert "errors" not in (await http.post("/graphql", json={"query": mutation}, headers=ci)).json()
        assert (await http.put(f"/tracking/task/{first}", json={"status": "DONE"}, headers=ci)).status_code == 200
        stored = await raw_db.tasks.find_one({"_id": first})
        assert stored["changed-by"]["name"] == "ci" and stored["changed-by"]["issuer"] is None
        await raw_db.tasks.update_one({"_id": first}, {"$set": {"status": "FIXED BY HAND"}})  # a tool
        await raw_db.tasks.insert_one({"_id": Int64(900), "job-id": "j", "nexts": [], "previous": []})  # a tool
        linked = await http.put(f"/tracking/task/{first}/next", params={"nextTaskId": second}, headers=ci)
        assert linked.status_code == 200
        assert (await http.delete(f"/tracking/task/{second}")).status_code == 204  # env-api-1

        async def recorded() -> bool:
            return len(await history(http, second)) == 3 and len(await history(http, 900)) == 1

        await eventually(recorded, what="the history written")
        changes = await history(http, first)
        assert [(change["kind"], change["actor"]) for change in changes] == [
            ("CREATED", "env-api-1"),
            ("UPDATED", "ci"),
            ("UPDATED", "ci"),
            ("UPDATED", None),  # the tool's: not the previous writer's
            ("UPDATED", "ci"),  # the link
            ("UPDATED", "env-api-1"),  # the link removed by the deletion of its next task
        ]
        assert {change["actorIssuer"] for change in changes} == {None}
        assert [(change["kind"], change["actor"]) for change in await history(http, second)] == [
            ("CREATED", "env-api-1"),
            ("UPDATED", "ci"),
            ("DELETED", "env-api-1"),
        ]
        assert [(change["kind"], change["actor"]) for change in await history(http, 900)] == [("CREATED", None)]
        api = await http.get(f"/tracking/task/{first}")
        assert "changed-by" not in api.text  # what readers see is unchanged


async def test_a_tool_deleting_a_task_the_gateway_wrote_is_no_gateway_deletion(store, raw_db, tmp_path):
    app, _ = gateway_app(store, tmp_path)
    writer = HistoryWriter(store._database, "actors", full_document=store.full_document, flush_s=0.1)
    async with writing_history(raw_db, writer), lifespan_client(app, AUTH) as http:
        created = await http.post("/tracking/task", json={"tasks": [{"job-id": "j"}]})
        task_id = created.json()["tasks"][0]["id"]
        await raw_db.tasks.delete_one({"_id": task_id})

        async def recorded() -> bool:
            return len(await history(http, task_id)) == 2

        await eventually(recorded, what="the history written")
        assert [(change["kind"], change["actor"]) for change in await history(http, task_id)] == [
            ("CREATED", "env-api-1"),
            ("DELETED", None),
        ]


async def test_the_access_log_and_the_metrics_name_the_caller(store, tmp_path):
    secret = await store.named_tokens().create("dashboard", write=False)
    app, settings = gateway_app(store, tmp_path)
    before = CALLER_REQUESTS.labels("dashboard", "200")._value.get()
    records: list[str] = []
    handler = log_handler("text")
    handler.emit = lambda record: records.append(handler.format(record))  # type: ignore[method-assign]
    access = logging.getLogger("uvicorn.access")
    async with served(app, settings) as port:
        level, access.level = access.level, logging.INFO  # uvicorn set it from the test server's log level
        access.addHandler(handler)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                answer = await http.post(
                    "/graphql", json={"query": "{ doneStatuses }"}, headers={"X-Auth-Token": secret}
                )
                assert answer.status_code == 200
                assert (await http.get("/tracking/task/1", headers={"X-Auth-Token": "wrong"})).status_code == 403
                assert (await http.get("/tracking/task/1", headers=AUTH)).status_code == 404
        finally:
            access.removeHandler(handler)
            access.setLevel(level)
    assert CALLER_REQUESTS.labels("dashboard", "200")._value.get() == before + 1
    assert len(records) == 3, records
    assert records[0].endswith('"POST /graphql HTTP/1.1" 200 caller=dashboard'), records
    assert records[1].endswith('"GET /tracking/task/1 HTTP/1.1" 403 caller=-'), records
    assert records[2].endswith('"GET /tracking/task/1 HTTP/1.1" 404 caller=env-api-1'), records
    assert secret not in "".join(records)
