"""The security headers, as a browser receives them: every page (the live view, GraphiQL, Swagger UI, ReDoc) sends
a Content-Security-Policy that runs only the gateway's own scripts, refuses framing and referrers; every answer
(pages, static files, the APIs' JSON and XML, errors) says nosniff. Whether the pages still work under their
policy is tested in headless Chromium (tests/test_pages_under_policy.py and every page test: bench.browser fails
on any refusal)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.responses import HTMLResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.helpers import TOKEN, gateway_app, lifespan_client
from ui import UI_DIR
from web.page_security import NONCE_PLACEHOLDER, STRICT, SecurityHeadersMiddleware

PAGES = ["/ui/", "/graphql", "/docs", "/redoc"]
STATIC = Path(__file__).parent.parent / "gateway" / "static"
UI_FILES = [*sorted(path.name for path in UI_DIR.glob("*.js")), "app.css"]


def policy(response: httpx.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy, by directive."""
    header = response.headers["content-security-policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


def assert_page_headers(response: httpx.Response) -> dict[str, list[str]]:
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert len(response.headers.get_list("content-security-policy")) == 1
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    directives = policy(response)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"], "the gateway's own script files only: no inline, no eval"
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert not any("unsafe" in source for sources in directives.values() for source in sources)
    assert not any(source in ("*", "http:", "https:", "data:") for source in directives["style-src"])
    return directives


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_every_page_sends_its_policy(client, path, method):
    response = await client.request(method, path, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_page_headers(response)


async def test_only_the_live_view_runs_a_worker_of_its_own_and_only_redoc_one_from_a_blob(client):
    workers = {}
    for path in PAGES:
        workers[path] = policy(await client.get(path, headers={"Accept": "text/html"}))["worker-src"]
    assert workers == {"/ui/": ["'self'"], "/graphql": ["'none'"], "/docs": ["'none'"], "/redoc": ["blob:"]}


@pytest.mark.parametrize("path", ["/graphql", "/redoc"])
async def test_graphiql_and_redoc_get_a_fresh_nonce_for_their_styles_in_the_header_and_the_page(client, path):
    nonces = []
    for _ in range(2):
        response = await client.get(path, headers={"Accept": "text/html"})
        assert_page_headers(response)
        assert response.headers["cache-control"] == "no-store", "a page's nonce is never served twice"
        [nonce] = [s[len("'nonce-") : -1] for s in policy(response)["style-src"] if s.startswith("'nonce-")]
        assert len(nonce) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", nonce)
        assert f'<meta name="csp-nonce" nonce="{nonce}">' in response.text
        assert NONCE_PLACEHOLDER not in response.text
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.parametrize("path", PAGES)
async def test_no_page_holds_an_inline_script_style_or_handler(client, path):
    response = await client.get(path, headers={"Accept": "text/html"})
    nonced = any(source.startswith("'nonce-") for source in policy(response)["style-src"])
    assert nonced == (path in ("/graphql", "/redoc")), "only the pages whose libraries write <style> have a nonce"
    markup = re.sub(r"<!--.*?-->", "", response.text, flags=re.DOTALL)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", markup), "every script is a file"
    assert not re.search(r"<style[\s>]|\sstyle=|\son[a-z]+=", markup), "no inline style or event handler"


async def test_every_static_file_and_live_view_file_says_nosniff(client):
    files = [f"/static/{path.relative_to(STATIC)}" for path in STATIC.rglob("*") if path.is_file()]
    files += [f"/ui/{name}" for name in UI_FILES]
    assert len(files) > 20
    for path in files:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff", path


@pytest.mark.parametrize(
    "name", ["types.d.ts", "__init__.py", "index.html", "..%2Fpyproject.toml", "%2E%2E%2Fpyproject.toml", "APP.JS"]
)
async def test_the_live_view_serves_its_scripts_and_style_sheet_and_nothing_else_of_its_folder(client, name):
    """The type check's declarations, the package's Python and anything outside ui/ are not files of the page
    (index.html is the page itself, at /ui/)."""
    response = await client.get(f"/ui/{name}")
    assert response.status_code == 404, response.text
    assert "content-security-policy" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/tracking/task/1", {"Accept": "application/json"}, 404),
        ("GET", "/tracking/task/1", {"Accept": "application/xml"}, 404),
        ("GET", "/tracking/task/1", {"X-Auth-Token": "wrong"}, 403),
        ("POST", "/graphql", {"Content-Type": "application/json"}, 200),
        ("GET", "/openapi.json", {}, 200),
        ("GET", "/healthz", {}, 200),
        ("GET", "/metrics", {}, 200),
        ("GET", "/no/such/path", {}, 404),
        ("GET", "/ui", {}, 307),
    ],
)
async def test_every_api_answer_says_nosniff_and_carries_no_page_policy(client, method, path, headers, status):
    body = b'{"query": "{ __typename }"}' if method == "POST" else None
    response = await client.request(method, path, headers=headers, content=body)
    assert response.status_code == status, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], "said once"
    assert "content-security-policy" not in response.headers


async def test_a_page_served_without_a_policy_of_its_own_gets_the_strict_one(store, tmp_path):
    """A page a future route forgets to give a policy is locked down, not open."""
    app, _ = gateway_app(store, tmp_path)
    app.add_api_route("/forgotten", lambda: HTMLResponse("<p>forgotten</p>"))
    async with lifespan_client(app, {"X-Auth-Token": TOKEN}) as http:
        response = await http.get("/forgotten")
    directives = assert_page_headers(response)
    assert response.headers["content-security-policy"] == STRICT.header()
    assert directives["worker-src"] == ["'none'"] and directives["style-src"] == ["'self'"]


HEADER_NAMES = st.sampled_from(
    ["Content-Type", "content-security-policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
     "ETag", "X-Other"]
)  # fmt: skip
MEDIA_TYPES = st.sampled_from(["text/html", "text/html; charset=utf-8", "application/json", "application/xml",
                               "text/plain", "text/javascript", "image/svg+xml"])  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    media_type=MEDIA_TYPES,
    given_headers=st.dictionaries(HEADER_NAMES, st.from_regex(r"[a-z0-9' -]{0,20}", fullmatch=True), max_size=5),
)
async def test_the_middleware_adds_what_an_answer_lacks_once_and_never_replaces_what_it_has(media_type, given_headers):
    """Whatever headers a route answers with: nosniff exactly once; an HTML answer without a policy gets the
    strict page headers; a header the route set is kept as it set it (a page's own policy wins)."""
    headers = {name: value for name, value in given_headers.items() if name.lower() != "content-type"}

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await Response(b"x", media_type=media_type, headers=headers)(scope, receive, send)

    transport = httpx.ASGITransport(app=SecurityHeadersMiddleware(route))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        answer = await http.get("/")
    for name, value in headers.items():
        assert answer.headers.get_list(name) == [value], name
    assert len(answer.headers.get_list("x-content-type-options")) == 1
    if "x-content-type-options" not in {name.lower() for name in headers}:
        assert answer.headers["x-content-type-options"] == "nosniff"
    sets_policy = "content-security-policy" in {name.lower() for name in headers}
    if media_type.startswith("text/html") and not sets_policy:
        assert answer.headers["content-security-policy"] == STRICT.header()
        assert answer.headers["referrer-policy"] == headers.get("Referrer-Policy", "no-referrer")
    elif not sets_policy:
        assert "content-security-policy" not in answer.headers
