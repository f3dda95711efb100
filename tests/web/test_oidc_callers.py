"""JWT callers are callers like any other (web.auth.Callers): the `tracking_jobs` claim scopes them as a token's
--jobs does, their changes name their `sub` and issuer in the task history and on the stored task, and
TRACKING_CALLER_RATE bounds them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models import GraphStore, HistoryWriter
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client, writing_history
from tests.models.test_actors import HISTORY
from tests.oidc_issuer import AUDIENCE, Issuer, rsa_key, running_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer(rsa_key("callers-1")) as served_issuer:
        yield served_issuer


def settings_of(issuer: Issuer, **overrides: Any) -> dict[str, Any]:
    return {"oidc_issuer": issuer.url, "oidc_audience": AUDIENCE, **overrides}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def history(http: Any, task_id: int) -> list[dict[str, Any]]:
    answer = await http.post("/graphql", json={"query": HISTORY % task_id}, headers=AUTH)
    return list(answer.json()["data"]["taskHistory"])


async def test_the_jobs_claim_scopes_a_jwt_caller_everywhere(store: GraphStore, tmp_path: Path, issuer: Issuer, raw_db):
    app, _ = gateway_app(store, tmp_path, **settings_of(issuer))
    scoped = bearer(issuer.token(sub="team-a-bot", tracking_jobs=["team-a/"]))
    async with lifespan_client(app) as http:
        tasks = [{"id": 1, "job-id": "team-a/build"}, {"id": 2, "job-id": "team-b/build"}]
        assert (await http.post("/tracking/task", json={"tasks": tasks}, headers=AUTH)).status_code == 200
        assert (await http.get("/tracking/task/1", headers=scoped)).status_code == 200
        assert (await http.get("/tracking/task/2", headers=scoped)).status_code == 404  # not revealed
        outside = await http.post("/tracking/task", json={"tasks": [{"id": 3, "job-id": "team-b/x"}]}, headers=scoped)
        assert outside.status_code == 403
        moved = await http.put("/tracking/task/2", json={"status": "DONE"}, headers=scoped)
        assert moved.status_code == 404
        jobs = await http.post("/graphql", json={"query": "{ jobs { edges { node { id } } } }"}, headers=scoped)
        assert [edge["node"]["id"] for edge in jobs.json()["data"]["jobs"]["edges"]] == ["team-a/build"]
        everything = bearer(issuer.token(sub="ops"))  # no claim: every job
        jobs = await http.post("/graphql", json={"query": "{ jobs { edges { node { id } } } }"}, headers=everything)
        assert len(jobs.json()["data"]["jobs"]["edges"]) == 2
    assert await raw_db.tasks.count_documents({"_id": 3}) == 0
    assert (await raw_db.tasks.find_one({"_id": 2})).get("status") is None, "the refused change changed nothing"


async def test_a_jwt_callers_changes_name_its_subject_and_issuer(
    store: GraphStore, tmp_path: Path, issuer: Issuer, raw_db
):
    app, _ = gateway_app(store, tmp_path, **settings_of(issuer))
    writer = HistoryWriter(store._database, "oidc-actors", full_document=store.full_document, flush_s=0.1)
    alice = bearer(issuer.token(sub="alice@example.com"))
    async with writing_history(raw_db, writer), lifespan_client(app) as http:
        created = await http.post("/tracking/task", json={"tasks": [{"id": 7, "job-id": "j"}]}, headers=alice)
        assert created.status_code == 200, created.text
        stored = await raw_db.tasks.find_one({"_id": 7})
        assert (stored["changed-by"]["name"], stored["changed-by"]["issuer"]) == ("alice@example.com", issuer.url)

        async def recorded() -> bool:
            return len(await history(http, 7)) == 1

        await eventually(recorded, what="the history written")
        (change,) = await history(http, 7)
    assert (change["kind"], change["actor"], change["actorIssuer"]) == ("CREATED", "alice@example.com", issuer.url)


async def test_the_default_caller_rate_bounds_jwt_callers(store: GraphStore, tmp_path: Path, issuer: Issuer):
    app, _ = gateway_app(store, tmp_path, **settings_of(issuer, caller_rate=0.01))  # one request per 100 s
    token = bearer(issuer.token(sub="hasty"))
    async with lifespan_client(app) as http:
        first = await http.get("/tracking/task/1", headers=token)
        second = await http.get("/tracking/task/1", headers=token)
        other = await http.get("/tracking/task/1", headers=bearer(issuer.token(sub="patient")))
    assert first.status_code == 404
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert other.status_code == 404, "the rate is per caller"
