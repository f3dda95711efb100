"""What caches are told (RFC 9111): every answer that needed a token says `Cache-Control: no-store`, errors and
refusals included, on REST and GraphQL; every negotiated answer says `Vary: Accept`, merged into one Vary line
with what other layers vary on; public answers keep their own caching."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.app import middleware_stack
from gateway.caching import CacheHeaders, with_cache_headers
from gateway.middleware import RequestIdMiddleware
from gateway.settings import load_settings
from tests.helpers import AUTH, TOKEN
from web.page_security import SecurityHeadersMiddleware

READ_TOKEN = "read-only-token"


@pytest.fixture
async def http(gateway_client):
    return await gateway_client(None, read_tokens=READ_TOKEN, max_body_bytes=1000, cors_origins="https://dash.example")


def assert_uncached(response: httpx.Response, what: str) -> None:
    assert response.headers.get_list("cache-control") == ["no-store"], f"{what}: {response.headers}"
    varies = response.headers.get_list("vary")
    assert len(varies) == 1, f"{what}: one Vary line, not {varies}"
    assert "accept" in [part.strip().lower() for part in varies[0].split(",")], f"{what}: {varies}"


async def test_every_kind_of_rest_answer_is_uncached_and_varies_on_accept(http):
    created = await http.post("/tracking/task", json={"tasks": [{"id": 1}, {"id": 2}]}, headers=AUTH)
    assert created.status_code == 200
    tag = (await http.get("/tracking/task/1", headers=AUTH)).headers["etag"]
    xml = {**AUTH, "Accept": "application/xml"}
    answers = [
        ("POST 200", 200, created),
        ("GET 200", 200, await http.get("/tracking/task/1", headers=AUTH)),
        ("GET 200 XML", 200, await http.get("/tracking/task/1", headers=xml)),
        ("HEAD 200", 200, await http.head("/tracking/task/1", headers=AUTH)),
        ("GET list 200", 200, await http.get("/tracking/task/1/next", headers=AUTH)),
        ("GET 304", 304, await http.get("/tracking/task/1", headers={**AUTH, "If-None-Match": tag})),
        ("PUT 412", 412, await http.put("/tracking/task/1", json={}, headers={**AUTH, "If-Match": '"x"'})),
        ("GET 404", 404, await http.get("/tracking/task/9", headers=AUTH)),
        ("GET 404 XML", 404, await http.get("/tracking/task/9", headers=xml)),
        ("GET 400", 400, await http.get("/tracking/task/x", headers=AUTH)),
        ("GET 403 no token", 403, await http.get("/tracking/task/1")),
        ("GET 403 wrong token", 403, await http.get("/tracking/task/1", headers={"X-Auth-Token": "wrong"})),
        ("PUT 403 read-only", 403, await http.put("/tracking/task/1", json={}, headers={"X-Auth-Token": READ_TOKEN})),
        ("GET 400 two tokens", 400, await http.get("/tracking/task/1", headers=[("X-Auth-Token", TOKEN)] * 2)),
        ("GET 406", 406, await http.get("/tracking/task/1", headers={**AUTH, "Accept": "text/html"})),
        ("PATCH 405", 405, await http.patch("/tracking/task/1", json={}, headers=AUTH)),
        ("POST 413", 413, await http.post("/tracking/task", content=b"x" * 2000, headers=AUTH)),
        (
            "POST 415",
            415,
            await http.post("/tracking/task", content=b"x", headers={**AUTH, "Content-Type": "text/plain"}),
        ),
        ("DELETE 204", 204, await http.delete("/tracking/task/2", headers=AUTH)),
        ("unknown path 404", 404, await http.get("/tracking/nothing/here", headers=AUTH)),
    ]
    for what, status, response in answers:
        assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
        assert_uncached(response, what)


async def test_every_kind_of_graphql_answer_is_uncached_and_varies_on_accept(http):
    query = {"query": "{ doneStatuses }"}
    answers = {
        "200 json": await http.post("/graphql", json=query, headers=AUTH),
        "200 graphql-response": await http.post(
            "/graphql", json=query, headers={**AUTH, "Accept": "application/graphql-response+json"}
        ),
        "200 GET": await http.get("/graphql", params=query, headers=AUTH),
        "200 field error": await http.post("/graphql", json={"query": '{ task(id: "x") { id } }'}, headers=AUTH),
        "403": await http.post("/graphql", json=query),
        "400 two tokens": await http.post("/graphql", json=query, headers=[("X-Auth-Token", TOKEN)] * 2),
        "406": await http.post("/graphql", json=query, headers={**AUTH, "Accept": "text/csv"}),
        "415": await http.post("/graphql", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"}),
        "413": await http.post("/graphql", content=b"x" * 2000, headers={**AUTH, "Content-Type": "application/json"}),
        "405": await http.get("/graphql", params={"query": "mutation { deleteTask(id: 1) }"}, headers=AUTH),
        "GraphiQL page": await http.get("/graphql", headers={"Accept": "text/html"}),
    }
    for what, response in answers.items():
        if what[:3].isdigit():
            assert response.status_code == int(what[:3]), f"{what}: {response.status_code} {response.text}"
        assert_uncached(response, what)


async def test_vary_is_merged_with_cors(http):
    response = await http.get("/tracking/task/1", headers={**AUTH, "Origin": "https://dash.example"})
    assert response.headers["access-control-allow-origin"] == "https://dash.example"
    assert_uncached(response, "CORS GET")
    assert {part.strip() for part in response.headers["vary"].split(",")} == {"Origin", "Accept"}


async def test_public_answers_keep_their_own_caching(http):
    for path in ("/healthz", "/metrics", "/openapi.json", "/static/favicon.svg", "/ui/", "/docs"):
        response = await http.get(path)
        assert response.status_code == 200, path
        assert "no-store" not in response.headers.get("cache-control", ""), path
        assert "accept" not in response.headers.get("vary", "").lower(), path
    for path in ("/nothing", "/static/nothing.js", "/ui/nothing"):  # the Error body is negotiated: it says so
        response = await http.get(path, headers={"Accept": "application/xml"})
        assert (response.status_code, response.headers["content-type"]) == (404, "application/xml"), path
        assert "Accept" in [part.strip() for part in response.headers["vary"].split(",")], path
        assert "cache-control" not in response.headers, path  # public: no token was needed


async def test_redoc_is_public_and_never_stored_for_its_nonce(http):
    """ReDoc needs no token, yet every answer carries a fresh nonce in its policy and markup (web.page_security),
    which a cache must never serve twice: `no-store`, from the page itself, and no `Vary: Accept` (one
    representation). docs/reference/caching.md says so."""
    for accept in ("text/html", "*/*"):
        response = await http.get("/redoc", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        assert "accept" not in response.headers.get("vary", "").lower()  # (Origin, with CORS on, as here)
        assert "'nonce-" in response.headers["content-security-policy"]


def test_cache_headers_replace_cache_control_and_merge_vary() -> None:
    merged = with_cache_headers(
        [(b"cache-control", b"max-age=60"), (b"vary", b"Origin"), (b"vary", b"accept-encoding")]
    )
    assert merged == [(b"cache-control", b"no-store"), (b"vary", b"Origin, accept-encoding, Accept")]
    assert with_cache_headers([(b"vary", b"Accept, Origin")])[-1] == (b"vary", b"Accept, Origin")
    assert with_cache_headers([(b"vary", b"*")])[-1] == (b"vary", b"*")


async def test_the_last_resort_500_is_uncached_too(tmp_path) -> None:
    """CacheHeaders sits outside every layer that answers on its own, so even RequestIdMiddleware's own 500 is
    covered (only the security headers, which never answer, wrap it)."""
    stack: list[object] = [layer.cls for layer in middleware_stack(load_settings(api_tokens=TOKEN, data_dir=tmp_path))]
    assert stack[: stack.index(CacheHeaders)] == [SecurityHeadersMiddleware]

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = CacheHeaders(RequestIdMiddleware(failing), gated=lambda path: path.startswith("/tracking/"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        response = await client.get("/tracking/task/1")
    assert response.status_code == 500
    assert_uncached(response, "500")
