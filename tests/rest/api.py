"""What the REST tests share: a create through the API, the ids of an answer, and the shape of an error body."""

from __future__ import annotations

import httpx


async def create(client, *tasks: dict) -> list[dict]:
    response = await client.post("/tracking/task", json={"tasks": list(tasks)})
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["tasks"]]


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    for fragment in fragments:
        assert fragment in body["message"]
    assert "Traceback" not in response.text
