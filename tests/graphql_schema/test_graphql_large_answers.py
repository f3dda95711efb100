"""Large GraphQL answers (by their estimated cost) are encoded in a worker thread, not on the event loop; the
bytes are the same as any answer's."""

from __future__ import annotations

import threading

import orjson

import graphql_schema.large_answers as large_answers
from tests.helpers import AUTH, gateway_app, lifespan_client, task


async def test_a_large_answer_is_encoded_off_the_event_loop_and_a_small_one_on_it(store, tmp_path, monkeypatch) -> None:
    await store.create_tasks([task(id=i, job_id="j", status="READY") for i in range(1, 51)])
    threads: list[str] = []
    encode = large_answers._encode

    def recorded(answer):
        threads.append(threading.current_thread().name)
        return encode(answer)

    monkeypatch.setattr(large_answers, "_encode", recorded)
    app, _ = gateway_app(store, tmp_path)
    loop_thread = threading.current_thread().name
    async with lifespan_client(app, AUTH) as client:
        large = await client.post("/graphql", json={"query": '{ job(id: "j") { tasks { id status } } }'})
        assert threads and all(name != loop_thread for name in threads), threads
        body = large.json()
        assert [t["id"] for t in body["data"]["job"]["tasks"]] == [str(i) for i in range(1, 51)]
        assert body["extensions"]["cost"]["estimated"] > large_answers.LARGE_ANSWER_COST
        assert large.content == orjson.dumps(body)
        threads.clear()
        small = await client.post("/graphql", json={"query": '{ task(id: "1") { id } }'})
        assert small.json()["data"] == {"task": {"id": "1"}}
        assert threads == []
