"""Bearer JWTs through the gateway (TRACKING_OIDC_ISSUER, TRACKING_OIDC_AUDIENCE) against a real issuer served over
HTTP: accepted on REST, GraphQL over HTTP and WebSocket; every forged kind refused with 401 and an RFC 6750
challenge, changing nothing; X-Auth-Token working as before; an issuer down at start stops nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graphql_schema.credentials import EXPIRED_REASON
from models import GraphStore
from tests.helpers import AUTH, TOKEN, eventually, gateway_app, lifespan_client, next_event, served, subscribed
from tests.oidc_issuer import AUDIENCE, Issuer, rsa_key, running_issuer
from tests.web.test_oidc_tokens import FORGED_KINDS, forged

INVALID = 'Bearer realm="tracking", error="invalid_token"'
CREATE = {"tasks": [{"id": 1, "job-id": "j1", "status": "READY"}]}
JOBS = "{ jobs(first: 10) { edges { node { id } } } }"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer(rsa_key("gw-1")) as served_issuer:
        yield served_issuer


@pytest.fixture(scope="module")
def forgeries(issuer: Issuer) -> dict[str, str]:
    return forged(issuer)


def oidc_settings(issuer: Issuer, **overrides: Any) -> dict[str, Any]:
    return {"oidc_issuer": issuer.url, "oidc_audience": AUDIENCE, **overrides}


@pytest.fixture
async def gateway(store: GraphStore, tmp_path: Path, issuer: Issuer) -> AsyncIterator[str]:
    """A gateway accepting the issuer's JWTs (and TOKEN), served on a loopback port; yields its base URL."""
    app, settings = gateway_app(store, tmp_path, **oidc_settings(issuer))
    async with served(app, settings) as port:
        yield f"http://127.0.0.1:{port}"


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rest_accepts_a_jwt_of_the_issuer_for_reads_and_writes(gateway: str, issuer: Issuer, raw_db):
    async with httpx.AsyncClient(base_url=gateway) as http:
        created = await http.post("/tracking/task", json=CREATE, headers=bearer(issuer.token()))
        assert created.status_code == 200, created.text
        read = await http.get("/tracking/task/1", headers=bearer(issuer.token(scope="tracking:read")))
        assert read.status_code == 200 and read.json()["id"] == 1
        still = await http.get("/tracking/task/1", headers=AUTH)  # X-Auth-Token works as before
        assert still.status_code == 200
    assert await raw_db.tasks.count_documents({}) == 1


async def test_a_read_only_jwt_may_not_write(gateway: str, issuer: Issuer, raw_db):
    async with httpx.AsyncClient(base_url=gateway) as http:
        refused = await http.post("/tracking/task", json=CREATE, headers=bearer(issuer.token(scope="tracking:read")))
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"].startswith('Bearer realm="tracking", error="insufficient_scope"')
    assert 'scope="tracking:write"' in refused.headers["www-authenticate"]
    assert "tracking:write" in refused.json()["message"]
    assert await raw_db.tasks.count_documents({}) == 0


async def test_a_jwt_without_a_tracking_scope_is_insufficient(gateway: str, issuer: Issuer):
    async with httpx.AsyncClient(base_url=gateway) as http:
        refused = await http.get("/tracking/task/1", headers=bearer(issuer.token(scope="openid profile")))
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


@pytest.mark.parametrize("kind", FORGED_KINDS)
async def test_every_forged_jwt_is_refused_on_rest_and_changes_nothing(
    gateway: str, forgeries: dict[str, str], kind: str, raw_db
):
    async with httpx.AsyncClient(base_url=gateway) as http:
        write = await http.post("/tracking/task", json=CREATE, headers=bearer(forgeries[kind]))
        read = await http.get("/tracking/task/1", headers={**bearer(forgeries[kind]), "Accept": "application/xml"})
    for answer in (write, read):
        assert answer.status_code == 401, (kind, answer.text)
        assert answer.headers["www-authenticate"].startswith(INVALID), answer.headers
    assert "<code>401</code>" in read.text  # in the format asked for
    assert await raw_db.tasks.count_documents({}) == 0


@pytest.mark.parametrize("kind", FORGED_KINDS)
async def test_every_forged_jwt_is_refused_on_graphql_over_http(gateway: str, forgeries: dict[str, str], kind: str):
    async with httpx.AsyncClient(base_url=gateway) as http:
        refused = await http.post("/graphql", json={"query": JOBS}, headers=bearer(forgeries[kind]))
    assert refused.status_code == 401, refused.text
    assert refused.headers["www-authenticate"].startswith(INVALID)
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in refused.json()


async def test_graphql_over_http_accepts_a_jwt(gateway: str, issuer: Issuer, raw_db):
    mutation = 'mutation { createTasks(tasks: [{id: 5, jobId: "g"}]) { id } }'
    async with httpx.AsyncClient(base_url=gateway) as http:
        read_only = bearer(issuer.token(scope="tracking:read"))
        answer = await http.post("/graphql", json={"query": JOBS}, headers=read_only)
        assert answer.json()["data"] == {"jobs": {"edges": []}}
        refused = (await http.post("/graphql", json={"query": mutation}, headers=read_only)).json()
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "tracking:write" in refused["errors"][0]["message"]
        assert await raw_db.tasks.count_documents({}) == 0
        created = await http.post("/graphql", json={"query": mutation}, headers=bearer(issuer.token()))
    assert created.json()["data"] == {"createTasks": [{"id": "5"}]}, created.text


async def test_a_missing_credential_is_challenged_and_x_auth_token_keeps_working(gateway: str):
    async with httpx.AsyncClient(base_url=gateway) as http:
        rest_refused = await http.get("/tracking/task/1")
        graphql_refused = await http.post("/graphql", json={"query": JOBS})
        rest = await http.get("/tracking/task/1", headers=AUTH)
    for refused in (rest_refused, graphql_refused):
        assert refused.status_code == 403  # the legacy contract: a missing token is 403
        assert refused.headers["www-authenticate"] == 'Bearer realm="tracking"'
    assert rest.status_code == 404 and "www-authenticate" not in rest.headers


async def test_without_an_issuer_the_authorization_field_is_not_the_gateways(
    store: GraphStore, tmp_path: Path, issuer: Issuer
):
    app, _ = gateway_app(store, tmp_path)
    async with lifespan_client(app) as http:
        alone = await http.get("/tracking/task/1", headers=bearer(issuer.token()))
        beside = await http.get("/tracking/task/1", headers={**AUTH, "Authorization": "Bearer for-a-proxy"})
    assert alone.status_code == 403 and "www-authenticate" not in alone.headers
    assert beside.status_code == 404


async def test_a_token_and_a_bearer_token_together_are_refused(gateway: str, issuer: Issuer):
    both = {**AUTH, **bearer(issuer.token())}
    async with httpx.AsyncClient(base_url=gateway) as http:
        rest = await http.get("/tracking/task/1", headers=both)
        graphql = await http.post("/graphql", json={"query": JOBS}, headers=both)
    assert rest.status_code == 400 and "not both" in rest.json()["message"]
    assert graphql.status_code == 400 and "not both" in graphql.json()["errors"][0]["message"]


async def test_what_a_token_names_is_shown_cut_short(gateway: str, issuer: Issuer):
    token = issuer.token(rsa_key("k" * 5000))
    async with httpx.AsyncClient(base_url=gateway) as http:
        refused = await http.get("/tracking/task/1", headers=bearer(token))
    assert refused.status_code == 401
    assert len(refused.headers["www-authenticate"]) < 300 and len(refused.json()["message"]) < 200


async def test_tokens_with_made_up_key_ids_fetch_the_keys_at_most_once_per_interval(gateway: str, issuer: Issuer):
    async with httpx.AsyncClient(base_url=gateway) as http:
        assert (await http.get("/tracking/task/1", headers=bearer(issuer.token()))).status_code == 404
        before, invalid = issuer.jwks_fetches(), counted("tracking_bearer_tokens_total", outcome="invalid_token")
        made_up = [issuer.token(rsa_key(f"made-up-{n}")) for n in range(3)] * 10
        answers = await asyncio.gather(*(http.get("/tracking/task/1", headers=bearer(token)) for token in made_up))
    assert {answer.status_code for answer in answers} == {401}
    # TRACKING_OIDC_KEYS_MIN_INTERVAL_S (30 s) apart: the first fetch was for the first token, within it.
    assert issuer.jwks_fetches() - before <= 1
    assert counted("tracking_bearer_tokens_total", outcome="invalid_token") == invalid + 30  # on /metrics


# ---- WebSocket ----------------------------------------------------------------------------------------------------


TRANSPORT_WS = [Subprotocol("graphql-transport-ws")]


def ws_url(gateway: str) -> str:
    return gateway.replace("http://", "ws://") + "/graphql"


async def drained(ws: Any) -> None:
    """Reads what comes (keep-alives) until the connection ends, a minute at most between two messages."""
    while True:
        await asyncio.wait_for(ws.recv(), 60)


async def closed_with(ws: Any) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_subscription_with_a_jwt_in_connection_init_gets_events(gateway: str, issuer: Issuer):
    query = 'subscription { taskEvents(jobId: "ws") { kind taskId } }'
    protocol = [Subprotocol("graphql-transport-ws")]
    async with connect(ws_url(gateway), subprotocols=protocol) as ws:
        payload = {"Authorization": f"Bearer {issuer.token(scope='tracking:read')}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        async with subscribed():
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        async with httpx.AsyncClient(base_url=gateway, headers=AUTH) as http:
            await http.post("/tracking/task", json={"tasks": [{"id": 9, "job-id": "ws"}]})
        assert await next_event(ws) == {"kind": "CREATED", "taskId": "9"}


@pytest.mark.parametrize("kind", ["expired", "alg none", "HS256 with the public key (PEM)", "wrong audience"])
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_forged_jwt_in_connection_init_closes_the_socket_with_4401(
    gateway: str, forgeries: dict[str, str], kind: str, protocol: str
):
    async with connect(ws_url(gateway), subprotocols=[Subprotocol(protocol)]) as ws:
        payload = {"Authorization": f"Bearer {forgeries[kind]}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        if protocol == "graphql-ws":
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert message["type"] == "connection_error", message
        code, reason = await closed_with(ws)
    assert code == 4401, (code, reason)
    assert reason


async def test_a_jwt_without_tracking_scope_closes_the_socket_with_4403(gateway: str, issuer: Issuer):
    async with connect(ws_url(gateway), subprotocols=TRANSPORT_WS) as ws:
        payload = {"authorization": f"Bearer {issuer.token(scope='openid')}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert (await closed_with(ws))[0] == 4403


async def test_an_upgrade_with_a_forged_authorization_header_is_answered_401(gateway: str, forgeries: dict[str, str]):
    headers = bearer(forgeries["wrong key under a known key id"])
    with pytest.raises(Exception) as refused:  # noqa: PT011 - websockets' InvalidStatus, its status read below
        async with connect(ws_url(gateway), subprotocols=TRANSPORT_WS, additional_headers=headers):
            pass
    response = refused.value.response  # type: ignore[attr-defined]
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith(INVALID)


async def test_an_upgrade_with_a_jwt_in_its_authorization_header_is_accepted(gateway: str, issuer: Issuer):
    headers = bearer(issuer.token(scope="tracking:read"))
    async with connect(ws_url(gateway), subprotocols=TRANSPORT_WS, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": JOBS}}))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert answer["type"] == "next" and answer["payload"]["data"] == {"jobs": {"edges": []}}, answer


async def test_a_payload_jwt_disagreeing_with_the_header_token_is_refused(gateway: str, issuer: Issuer):
    async with connect(ws_url(gateway), subprotocols=TRANSPORT_WS, additional_headers=AUTH) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {issuer.token()}"}}))
        assert (await closed_with(ws))[0] == 4400


# ---- the issuer down at start -------------------------------------------------------------------------------------


async def test_an_issuer_down_at_start_stops_nothing_and_jwts_work_once_it_is_up(store: GraphStore, tmp_path: Path):
    issuer = Issuer([rsa_key("late-1")])  # not started: nothing listens on its port
    token = issuer.token()
    app, settings = gateway_app(store, tmp_path, **oidc_settings(issuer, oidc_keys_min_interval_s=1))
    try:
        async with served(app, settings) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/readyz")).status_code == 200
            unavailable = await http.get("/tracking/task/1", headers=bearer(token))
            assert unavailable.status_code == 503, unavailable.text
            assert int(unavailable.headers["retry-after"]) >= 1
            assert "could not be fetched" in unavailable.json()["message"]
            graphql = await http.post("/graphql", json={"query": JOBS}, headers=bearer(token))
            assert graphql.status_code == 503 and graphql.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
            assert (await http.get("/tracking/task/1", headers={"X-Auth-Token": TOKEN})).status_code == 404
            issuer.start()

            async def accepted() -> bool:
                return (await http.get("/tracking/task/1", headers=bearer(token))).status_code == 404

            await eventually(accepted, what="the JWT accepted once the issuer is up")
    finally:
        issuer.stop()


async def test_a_jwt_is_found_nowhere_in_the_logs_or_the_database(
    gateway: str, issuer: Issuer, forgeries: dict[str, str], raw_db, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    token = issuer.token()
    async with httpx.AsyncClient(base_url=gateway) as http:
        assert (await http.post("/tracking/task", json=CREATE, headers=bearer(token))).status_code == 200
        for forged_token in forgeries.values():
            await http.put("/tracking/task/1", json={"status": "DONE"}, headers=bearer(forged_token))
    signatures = [part.rsplit(".", 1)[-1] for part in (token, *forgeries.values()) if len(part.rsplit(".", 1)[-1]) > 16]
    assert signatures and not [signature for signature in signatures if signature in caplog.text]
    stored = [
        json.dumps(doc, default=str)
        for name in await raw_db.list_collection_names()
        async for doc in raw_db[name].find()
    ]
    assert not [signature for signature in signatures if any(signature in doc for doc in stored)]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_websocket_ends_when_its_jwt_expires(store: GraphStore, tmp_path: Path, issuer: Issuer, protocol: str):
    app, settings = gateway_app(store, tmp_path, **oidc_settings(issuer, oidc_leeway_s=0))
    async with served(app, settings) as port:
        url = f"ws://127.0.0.1:{port}/graphql"
        async with connect(url, subprotocols=[Subprotocol(protocol)]) as ws:
            payload = {"Authorization": f"Bearer {issuer.token(exp=int(time.time()) + 3)}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            with pytest.raises(ConnectionClosed) as closed:
                await drained(ws)
        async with connect(url, subprotocols=TRANSPORT_WS) as ws:  # an API token's connection has no end
            await ws.send(json.dumps({"type": "connection_init", "payload": AUTH}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, EXPIRED_REASON)
