"""The pages a person opens (GraphiQL, Swagger UI, ReDoc) rendered in headless Chromium with every host but
loopback unreachable, as in a network without internet: each renders, and no request it makes leaves."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.browser import render
from tests.conftest import PAGES_TOKEN as TOKEN


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        (f"/graphql#token={TOKEN}", "graphiql-container"),
        ("/docs", "btn authorize"),  # Swagger UI, with its Authorize button for X-Auth-Token
        ("/redoc", "api-content"),
    ],
)
async def test_each_page_renders_offline(base_url, tmp_path, path, rendered):
    page = await render(f"{base_url}{path}", tmp_path)
    assert rendered in page.dom, page.dom[:2000]
    assert page.external == [], "no request may leave the machine"
    assert any("/static/vendor/" in url for url in page.requests)


async def test_graphiql_loads_the_schema_with_the_token_from_the_link(base_url, tmp_path):
    page = await render(f"{base_url}/graphql#token={TOKEN}", tmp_path)
    schema_requests = [url for url in page.requests if url == f"{base_url}/graphql"]
    assert schema_requests, "GraphiQL asked the gateway for the schema"
    assert TOKEN not in "".join(url for url in page.requests if "#" not in url), "the token never goes in a URL"
    assert "jobs(first: 10)" in page.dom  # the example query in the editor


async def test_graphiql_asks_for_the_token_when_it_has_none(base_url, tmp_path):
    page = await render(f"{base_url}/graphql", tmp_path, wait_ms=3000)
    assert re.search(r'<form id="token-form"(?![^>]*hidden)', page.dom), "the token form is shown"
    assert 'class="graphiql-container"' not in page.dom


async def test_no_page_references_another_host(base_url):
    async with httpx.AsyncClient(base_url=base_url) as http:
        for path in ("/graphql", "/docs", "/redoc"):
            html = (await http.get(path, headers={"Accept": "text/html"})).text
            assert not re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", html), path
