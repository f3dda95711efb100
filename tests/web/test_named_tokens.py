"""Named tokens in MongoDB (models.tokens) as a gateway in this process honours them: only the SHA-256 of a
secret is stored, an unknown token costs MongoDB nothing, expiry is enforced, `last_used` is written at most once
per interval, and the environment's tokens keep working beside them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from graphql_schema.credentials import TOKEN_RECHECK_S
from models import InvalidOperation
from models.tokens import TokenCache
from tests.conftest import TEST_DB
from tests.gateway.test_outages import doomed, is_stopped
from tests.helpers import AUTH, eventually, gateway_app, lifespan_client, served
from tests.monitoring import monitored_store
from web.auth import Caller, Callers, Credential

DONE = {"query": "{ doneStatuses }"}
__all__ = ["doomed"]  # the fixture, used by name


async def stored_everywhere(raw_db) -> str:
    """Every document of every collection of the test database, as text (to look for a secret in)."""
    texts = []
    for name in await raw_db.list_collection_names():
        texts += [repr(doc) async for doc in raw_db[name].find()]
    return "\n".join(texts)


async def test_only_the_hash_of_a_secret_is_stored(store, raw_db):
    tokens = store.named_tokens()
    secret = await tokens.create("ci", write=True, jobs=("ci-", "ci-"), rate=5.0)
    stored = await raw_db.tokens.find_one({"_id": "ci"})
    assert stored["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["access"] == "write" and stored["jobs"] == ["ci-"] and stored["rate"] == 5.0
    assert stored["expires"] is None and stored["last_used"] is None
    assert secret not in await stored_everywhere(raw_db)
    assert len(secret) >= 43  # 256 random bits
    listed = await tokens.listed()
    assert [token["_id"] for token in listed] == ["ci"] and "hash" not in listed[0]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("env-api-1", "environment's"),
        ("ENV-api-1", "environment's"),
        ("Env-read-1", "environment's"),
        ("", "1 to 64"),
        ("a b", "1 to 64"),
        ("-x", "1 to 64"),
        ("x" * 65, "1 to 64"),
    ],
)
async def test_names_that_could_be_mistaken_are_refused(store, raw_db, name, fragment):
    with pytest.raises(InvalidOperation, match=fragment):
        await store.named_tokens().create(name, write=True)
    assert await raw_db.tokens.count_documents({}) == 0


async def test_a_name_is_taken_once_and_bad_prefixes_or_rates_are_refused(store, raw_db):
    tokens = store.named_tokens()
    await tokens.create("ci", write=False)
    with pytest.raises(InvalidOperation, match="exists already"):
        await tokens.create("ci", write=True)
    with pytest.raises(InvalidOperation, match=r"'ci' exists already \(names are compared ignoring case"):
        await tokens.create("CI", write=True)  # would pass for `ci` in logs, metrics and the history
    with pytest.raises(InvalidOperation, match="--jobs"):
        await tokens.create("other", write=True, jobs=("",))
    with pytest.raises(InvalidOperation, match="--rate"):
        await tokens.create("other", write=True, rate=0)
    with pytest.raises(InvalidOperation, match="no token named 'nobody'"):
        await tokens.revoke("nobody")
    assert [doc["_id"] async for doc in raw_db.tokens.find()] == ["ci"]


async def test_an_expired_token_is_refused_and_last_used_is_written_once_per_interval(store, raw_db):
    tokens = store.named_tokens()
    secret = await tokens.create("brief", write=True, expires_in=timedelta(hours=1))
    cache = TokenCache(tokens, reload_s=60, last_used_s=60)
    await cache.reload()
    assert cache.grant("not-" + secret) is None
    for _ in range(50):
        assert cache.grant(secret) is not None
    await cache.write_last_used()
    first = (await raw_db.tokens.find_one({"_id": "brief"}))["last_used"]
    assert first is not None
    await cache.write_last_used()  # nothing used since: nothing written
    assert (await raw_db.tokens.find_one({"_id": "brief"}))["last_used"] == first
    assert cache.grant(secret, now=datetime.now(UTC) + timedelta(hours=2)) is None


async def test_a_gateway_honours_named_tokens_beside_the_environment_s(store, raw_db, tmp_path):
    tokens = store.named_tokens()
    secret = await tokens.create("viewer", write=False)
    app, _ = gateway_app(store, tmp_path, tokens_reload_ms=100)
    async with lifespan_client(app) as http:
        named = {"X-Auth-Token": secret}
        assert (await http.post("/graphql", json=DONE, headers=named)).status_code == 200
        assert (await http.post("/graphql", json=DONE, headers=AUTH)).status_code == 200  # the environment's
        refused = await http.post("/tracking/task", json={"tasks": [{"name": "x"}]}, headers=named)
        assert refused.status_code == 403 and "may only read" in refused.json()["message"]
        assert "'viewer' was created with `token create --read-only`" in refused.json()["message"]
        assert "TRACKING_READ_TOKENS" not in refused.json()["message"]  # not how this token was made
        mutation = await http.post(
            "/graphql", json={"query": 'mutation { createTasks(tasks: [{id: "1"}]) { id } }'}, headers=named
        )
        assert "'viewer' was created with `token create --read-only`" in mutation.json()["errors"][0]["message"]
        await tokens.revoke("viewer")

        async def refused_now() -> bool:
            return (await http.post("/graphql", json=DONE, headers=named)).status_code == 403

        await eventually(refused_now, what="the revoked token refused")
        created = await tokens.create("later", write=True)

        async def accepted() -> bool:
            answer = await http.post(
                "/tracking/task", json={"tasks": [{"name": "x"}]}, headers={"X-Auth-Token": created}
            )
            return answer.status_code == 200

        await eventually(accepted, what="the new token accepted without a restart")
    assert await raw_db.tasks.count_documents({}) == 1


async def test_unknown_tokens_never_reach_mongodb(mongo_uri, store, tmp_path):
    async with monitored_store(mongo_uri, TEST_DB) as (monitored, log):
        app, _ = gateway_app(monitored, tmp_path, tokens_reload_ms=3_600_000)
        async with lifespan_client(app) as http:
            # The first request with a token not from the environment waits for the first load of them.
            assert (await http.get("/tracking/task/1", headers={"X-Auth-Token": "first"})).status_code == 403
            async with log.recorded():
                for attempt in range(100):
                    answer = await http.get("/tracking/task/1", headers={"X-Auth-Token": f"guess-{attempt}"})
                    assert answer.status_code == 403
            assert log.reads("tokens") == []


async def test_a_token_stored_wrongly_by_a_tool_is_refused_and_the_others_served(store, raw_db):
    tokens = store.named_tokens()
    good = await tokens.create("good", write=True)
    await raw_db.tokens.insert_one(
        {"_id": "broken", "hash": "x", "access": "write", "created": "yesterday", "rate": "fast"}
    )
    cache = TokenCache(tokens, reload_s=60, last_used_s=60)
    await cache.reload()
    assert cache.grant(good) is not None


@pytest.mark.slow
async def test_with_mongodb_frozen_at_start_a_token_not_yet_loaded_is_503_never_403(doomed, tmp_path):
    """Start-up does not wait for the named tokens: the environment's tokens are judged at once, and a token the
    gateway cannot look up yet is answered 503 with Retry-After (a 403 would tell its holder to throw it away)."""
    mongo, store = doomed
    os.kill(mongo.process.pid, signal.SIGSTOP)
    try:
        await eventually(lambda: is_stopped(mongo.process.pid), what="mongod stopped")
        app, _ = gateway_app(store, tmp_path)
        async with lifespan_client(app) as http:
            unknown_yet = await http.get("/tracking/task/1", headers={"X-Auth-Token": "named-maybe"})
            assert unknown_yet.status_code == 503, unknown_yet.text
            assert "named tokens" in unknown_yet.json()["message"]
            assert int(unknown_yet.headers["Retry-After"]) >= 1
            from_environment = await http.get("/tracking/task/1", headers=AUTH)
            assert from_environment.status_code == 503  # accepted; MongoDB is what is away
            assert "named tokens" not in from_environment.text
    finally:
        os.kill(mongo.process.pid, signal.SIGCONT)


@pytest.mark.parametrize("in_payload", [True, False], ids=["connection_init", "upgrade"])
async def test_a_revoked_token_s_open_websocket_is_closed(store, raw_db, tmp_path, in_payload):
    """Revoking a token took nothing from a WebSocket it had opened: its subscriptions kept delivering and it
    kept running mutations on it for as long as the socket lived. Now the socket is closed (4403) once the
    gateway has reloaded the tokens (TRACKING_TOKENS_RELOAD_MS) and looked the socket's token up again."""
    tokens = store.named_tokens()
    secret = await tokens.create("writer", write=True)
    app, settings = gateway_app(store, tmp_path, tokens_reload_ms=100)
    headers = {} if in_payload else {"X-Auth-Token": secret}
    payload = {"X-Auth-Token": secret} if in_payload else {}
    async with served(app, settings) as port:
        uri = f"ws://127.0.0.1:{port}/graphql"
        async with connect(uri, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            subscribe = {"query": "subscription { taskEvents { kind } }"}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
            await tokens.revoke("writer")
            await asyncio.wait_for(ws.wait_closed(), 15)
            assert ws.close_code == 4403 and "revoked" in (ws.close_reason or "")
    assert await raw_db.tasks.count_documents({}) == 0


async def test_open_websockets_of_one_token_cost_one_lookup_per_recheck(store, tmp_path, monkeypatch):
    """Each open WebSocket looked its token up again every second, in a loop of its own: a fleet of dashboards
    on one token cost a timer, futures and a lookup per connection per second, whatever changed. The tokens of
    open WebSockets are now looked up once per recheck for all of them."""
    secret = await store.named_tokens().create("wallboards", write=False)
    lookups: list[float] = []
    resolve = Callers.resolve

    async def counted(self: Callers, credential: Credential | None) -> Caller | None:
        if credential == secret:
            lookups.append(time.monotonic())
        return await resolve(self, credential)

    monkeypatch.setattr(Callers, "resolve", counted)
    app, settings = gateway_app(store, tmp_path)
    async with served(app, settings) as port, contextlib.AsyncExitStack() as sockets:
        for _ in range(CONNECTIONS):
            ws = await sockets.enter_async_context(
                connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")])
            )
            await ws.send(json.dumps({"type": "connection_init", "payload": {"X-Auth-Token": secret}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        lookups.clear()  # those of the connections' own authentication

        async def rechecked_thrice() -> bool:
            return len(lookups) >= 2 and lookups[-1] - lookups[0] >= 2 * TOKEN_RECHECK_S

        await eventually(rechecked_thrice, timeout=60, what="three rechecks of the open WebSockets' token")
        rechecks = round((lookups[-1] - lookups[0]) / TOKEN_RECHECK_S) + 1
        assert len(lookups) <= rechecks + 1, f"{len(lookups)} lookups in {rechecks} rechecks of {CONNECTIONS} sockets"


CONNECTIONS = 20
