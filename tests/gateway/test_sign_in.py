""" "Sign in" on the pages (TRACKING_OIDC_CLIENT_ID) in headless Chromium against a real OpenID provider run locally
(tests/oidc_provider.py): the authorization code flow with PKCE (S256), state and nonce, the token kept in the tab
and sent as `Authorization: Bearer`; a sign-in the tab did not start is refused; without a client id nothing is
offered. Every page's Content-Security-Policy must let it all work (bench.browser fails on any violation)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import pytest

from bench.browser import Browser
from models import GraphStore
from tests.gateway.test_pages import run_the_example_query
from tests.helpers import AUTH, gateway_app, served
from tests.oidc_provider import Provider, running_provider

CLIENT_ID = "tracking-pages"
BEARER_KEY = "tracking-bearer"  # gateway/static/token.js
ALICE = oidc_provider_mock.User(sub="alice", claims={"scope": "tracking:read tracking:write", "name": "Alice"})
READER = oidc_provider_mock.User(sub="rita", claims={"scope": "tracking:read"})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider([ALICE, READER]) as running:
        yield running


def sign_in_settings(provider: Provider, **overrides: Any) -> dict[str, Any]:
    """The pages as a public client of the provider, sending the ID token (its access tokens are opaque)."""
    return {
        "oidc_issuer": provider.url,
        "oidc_audience": CLIENT_ID,
        "oidc_client_id": CLIENT_ID,
        "oidc_page_token": "id_token",
        **overrides,
    }


@pytest.fixture
async def gateway(store: GraphStore, tmp_path: Path, provider: Provider) -> AsyncIterator[str]:
    app, settings = gateway_app(store, tmp_path / "gateway", **sign_in_settings(provider))
    async with served(app, settings) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH) as http:
            created = await http.post("/tracking/task", json={"tasks": [{"id": 1, "job-id": "signed-in"}]})
            assert created.status_code == 200, created.text
        yield base


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def sign_in_at_the_provider(browser: Browser, provider: Provider, user: str) -> None:
    """On the provider's authorization page (reached from the gateway's "Sign in"), picks `user`."""
    await browser.wait_for(f"location.href.startsWith('{provider.url}/oauth2/authorize')")
    await browser.click(f'button[name="sub"][value="{user}"]')


async def test_graphiql_signs_in_with_pkce_and_sends_the_bearer_token(gateway: str, provider: Provider, tmp_path):
    provider.requests.clear()
    async with Browser(tmp_path) as browser:
        await browser.open(f"{gateway}/graphql")
        await browser.wait_for("document.getElementById('sign-in')?.hidden === false")
        await browser.screenshot(tmp_path / "graphiql-sign-in-offered.png")
        await browser.click("#sign-in")
        await sign_in_at_the_provider(browser, provider, "alice")
        await browser.wait_for(
            "location.pathname === '/graphql' && document.querySelector('.graphiql-container') !== null"
        )
        assert await browser.evaluate("location.search + location.hash") == "", "the code left the address bar"
        held = json.loads(await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')"))
        assert await browser.evaluate("sessionStorage.getItem('tracking-token')") is None
        answer = await run_the_example_query(browser)
        await browser.screenshot(tmp_path / "graphiql-signed-in.png")
    assert [edge["node"]["id"] for edge in answer["data"]["jobs"]["edges"]] == ["signed-in"]

    (authorize,) = [params for params in provider.asked("/oauth2/authorize") if "state" in params][:1]
    (exchange,) = [
        params for params in provider.asked("/oauth2/token") if params.get("grant_type") == ["authorization_code"]
    ]
    assert authorize["response_type"] == ["code"] and authorize["client_id"] == [CLIENT_ID]
    assert authorize["code_challenge_method"] == ["S256"]
    assert authorize["code_challenge"] == [s256(exchange["code_verifier"][0])], "the verifier is the challenge's"
    assert authorize["redirect_uri"] == [f"{gateway}/auth/callback"] == exchange["redirect_uri"]
    assert "client_secret" not in exchange, "a public client holds no secret"
    id_claims = json.loads(base64.urlsafe_b64decode(held["token"].split(".")[1] + "=="))
    assert id_claims["nonce"] == authorize["nonce"][0] and id_claims["sub"] == "alice"

    async with httpx.AsyncClient(base_url=gateway) as http:  # the token the tab holds is a credential
        read = await http.get("/tracking/task/1", headers={"Authorization": f"Bearer {held['token']}"})
    assert read.status_code == 200


async def test_the_live_view_signs_in_and_follows_a_job_live_with_the_bearer_token(
    gateway: str, provider: Provider, tmp_path
):
    """From a fresh tab: "Sign in" beside the token field, the provider, then back on the live view's job, whose
    graph updates live over the WebSocket authenticated by the token in connection_init."""
    async with Browser(tmp_path) as browser:
        await browser.open(f"{gateway}/ui/#job=signed-in")
        await browser.wait_for("document.getElementById('sign-in')?.hidden === false")
        await browser.screenshot(tmp_path / "live-view-sign-in-offered.png")
        await browser.click("#sign-in")
        await sign_in_at_the_provider(browser, provider, "rita")  # tracking:read is enough to look
        await browser.wait_for("location.pathname === '/ui/' && document.querySelectorAll('.task').length === 1")
        assert await browser.evaluate("location.hash") == "#job=signed-in", "back where the sign-in started"
        await browser.wait_for("document.getElementById('live').classList.contains('on')")
        async with httpx.AsyncClient(base_url=gateway, headers=AUTH) as http:
            assert (await http.put("/tracking/task/1", json={"status": "FAILED"})).status_code == 200
        await browser.wait_for("document.querySelector('.task[data-id=\"1\"]').textContent.includes('FAILED')")
        await browser.screenshot(tmp_path / "live-view-signed-in.png")
        held = json.loads(await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')"))
        assert json.loads(base64.urlsafe_b64decode(held["token"].split(".")[1] + "=="))["sub"] == "rita"
        await browser.click("#forget")  # Sign out: the tab holds nothing, and asks again
        await browser.wait_for("document.getElementById('login') !== null")
        assert await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')") is None


async def test_a_callback_the_tab_did_not_start_keeps_nothing(gateway: str, provider: Provider, tmp_path):
    """A code and state an attacker sends the browser to (login CSRF) are refused: the tab started no sign-in."""
    async with Browser(tmp_path) as browser:
        await browser.open(f"{gateway}/auth/callback?code=stolen&state=forged")
        shown = await browser.wait_for("document.getElementById('sign-in-error')?.textContent")
        await browser.screenshot(tmp_path / "callback-refused.png")
        assert "not started from this tab" in shown
        assert await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')") is None
        assert await browser.evaluate("location.search") == ""
    assert not [params for params in provider.asked("/oauth2/token") if params.get("code") == ["stolen"]]


async def test_the_provider_denying_keeps_nothing(gateway: str, provider: Provider, tmp_path):
    async with Browser(tmp_path) as browser:
        await browser.open(f"{gateway}/graphql")
        await browser.click("#sign-in")
        await browser.wait_for(f"location.href.startsWith('{provider.url}/oauth2/authorize')")
        await browser.click('button[name="action"][value="deny"]')
        shown = await browser.wait_for("document.getElementById('sign-in-error')?.textContent")
        assert "access_denied" in shown
        assert await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')") is None


async def test_an_expired_sign_in_asks_again(store: GraphStore, tmp_path: Path):
    """A token that expires (here after 15 seconds, time enough to sign in on a loaded machine), with no refresh
    token to renew it, is forgotten, and the page offers "Sign in" again rather than sending it."""
    with running_provider([ALICE], token_max_age=timedelta(seconds=15), refresh=False) as provider:
        app, settings = gateway_app(store, tmp_path / "gateway", **sign_in_settings(provider, oidc_leeway_s=0))
        async with served(app, settings) as port, Browser(tmp_path) as browser:
            await browser.open(f"http://127.0.0.1:{port}/graphql")
            await browser.click("#sign-in")
            await sign_in_at_the_provider(browser, provider, "alice")
            await browser.wait_for("document.querySelector('.graphiql-container') !== null")
            await browser.wait_for(  # expired: the next request asks again instead of sending it
                "(async () => { const held = JSON.parse(sessionStorage.getItem('tracking-bearer') || '{}');"
                " if (Date.now() < held.expiresAt) return false;"
                " document.querySelector('.graphiql-execute-button').click(); return true; })()",
                timeout_s=60,
            )
            message = await browser.wait_for(
                "document.getElementById('token-form')?.hidden === false && "
                "document.getElementById('token-error').textContent"
            )
            assert "sign in again" in message
            assert await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')") is None
            assert await browser.evaluate("document.getElementById('sign-in').hidden") is False
            await browser.screenshot(tmp_path / "graphiql-expired.png")


async def test_a_sign_in_about_to_expire_is_renewed_with_its_refresh_token(store: GraphStore, tmp_path: Path):
    """A token within 30 s of its expiry is renewed before it is sent (here a 20 s one, at once): the page goes on
    with the new token, nobody asked to sign in again."""
    with running_provider([ALICE], token_max_age=timedelta(seconds=20)) as provider:
        app, settings = gateway_app(store, tmp_path / "gateway", **sign_in_settings(provider))
        async with served(app, settings) as port, Browser(tmp_path) as browser:
            await browser.open(f"http://127.0.0.1:{port}/graphql")
            await browser.click("#sign-in")
            await sign_in_at_the_provider(browser, provider, "alice")
            await browser.wait_for("document.querySelector('.graphiql-container') !== null")
            first = json.loads(await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')"))
            answer = await run_the_example_query(browser)
            renewed = json.loads(await browser.evaluate(f"sessionStorage.getItem('{BEARER_KEY}')"))
    assert "errors" not in answer, answer
    assert [params["grant_type"] for params in provider.asked("/oauth2/token")][-1] == ["refresh_token"]
    assert renewed["token"] != first["token"] and renewed["expiresAt"] >= first["expiresAt"]
    assert renewed["refreshToken"], "the provider's new refresh token is kept"


async def test_without_a_client_id_no_page_offers_sign_in(store: GraphStore, tmp_path: Path, provider: Provider):
    app, settings = gateway_app(store, tmp_path / "gateway", **sign_in_settings(provider, oidc_client_id=None))
    async with served(app, settings) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/auth/config")).status_code == 404
        assert (await http.get("/auth/callback")).status_code == 404
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert provider.url not in page.headers["content-security-policy"]
        async with Browser(tmp_path) as browser:
            await browser.open(f"http://127.0.0.1:{port}/graphql")
            await browser.wait_for("document.getElementById('token-form')?.hidden === false")
            assert await browser.evaluate("document.getElementById('sign-in').hidden") is True


async def test_the_pages_policy_allows_the_token_endpoint_only(gateway: str, provider: Provider):
    async with httpx.AsyncClient(base_url=gateway) as http:
        config = (await http.get("/auth/config")).json()
        pages = [
            await http.get("/graphql", headers={"Accept": "text/html"}),
            await http.get("/ui/"),
            await http.get("/auth/callback"),
        ]
    assert config == {
        "issuer": provider.url,
        "clientId": CLIENT_ID,
        "authorizationEndpoint": f"{provider.url}/oauth2/authorize",
        "tokenEndpoint": f"{provider.url}/oauth2/token",
        "scope": "openid tracking:read tracking:write",
        "token": "id_token",
        "redirectPath": "/auth/callback",
    }
    for page in pages:
        policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
        assert policy["connect-src"] == f"'self' {provider.url}/oauth2/token", page.url
        assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"


async def test_the_provider_the_tests_run_checks_pkce_as_a_public_client_provider_does(provider: Provider):
    """So that a sign-in that worked above proves the pages sent the verifier of their S256 challenge."""
    redirect = "http://127.0.0.1:9/auth/callback"
    verifier = "v" * 43
    asked = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect, "scope": "openid"}
    asked |= {"state": "s", "nonce": "n", "code_challenge": s256(verifier), "code_challenge_method": "S256"}
    async with httpx.AsyncClient(base_url=provider.url) as http:
        plain = await http.post(
            "/oauth2/authorize", params={**asked, "code_challenge_method": "plain"}, data={"sub": "alice"}
        )
        assert "code=" not in plain.headers.get("location", ""), "only S256"
        authorized = await http.post("/oauth2/authorize", params=asked, data={"sub": "alice"})
        code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
        exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "client_id": CLIENT_ID}
        wrong = await http.post("/oauth2/token", data={**exchange, "code_verifier": "w" * 43})
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        missing = await http.post("/oauth2/token", data=exchange)
        assert missing.status_code == 400
        right = await http.post("/oauth2/token", data={**exchange, "code_verifier": verifier})
        assert right.status_code == 200 and "id_token" in right.json()
