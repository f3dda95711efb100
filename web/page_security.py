"""The security headers of everything the gateway serves, built here and nowhere else.

Every answer gets `X-Content-Type-Options: nosniff`. A page (any text/html answer) also gets a
Content-Security-Policy, `Referrer-Policy: no-referrer` and the framing refusals: the pages keep the API token in
`sessionStorage`, so a script that is not the gateway's own must never run on them, and no other site may frame
them. The policy of each page is the base policy plus what that page was seen to need in Chromium
(docs/reference/page-security.md says why each directive is there)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NONCE_PLACEHOLDER = "{{csp-nonce}}"
"""Where a page's HTML takes the nonce of its answer (a `<meta name="csp-nonce" nonce=…>` its script reads)."""

BASE_POLICY: dict[str, tuple[str, ...]] = {
    "default-src": ("'none'",),  # whatever a page does not name below is refused
    "script-src": ("'self'",),  # the gateway's own script files only: no inline script, no eval
    "style-src": ("'self'",),
    "img-src": ("'self'",),
    "font-src": ("'self'",),
    "connect-src": ("'self'",),  # fetch and the GraphQL WebSocket, same origin only
    "worker-src": ("'none'",),
    "object-src": ("'none'",),
    "base-uri": ("'none'",),  # no <base> may turn the pages' relative URLs elsewhere
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}

ANSWER_HEADERS = {"X-Content-Type-Options": "nosniff"}
"""On every answer: a browser never reads a JSON, XML or script answer as another type than the one declared."""

PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",  # no URL of a page ever leaves in a Referer
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",  # a window of another site that opened a page keeps no handle on it
}


@dataclass(frozen=True)
class PagePolicy:
    """One page's Content-Security-Policy: the base policy with `extra` sources added (replacing a directive's
    'none'), and whether the page needs a nonce for the `<style>` elements its vendored libraries write as they
    run (static/style-nonce.js hands it to them)."""

    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    style_nonce: bool = False

    def header(self, nonce: str | None = None) -> str:
        directives = {**BASE_POLICY}
        for directive, sources in self.extra.items():
            kept = tuple(s for s in directives.get(directive, ()) if s != "'none'")
            directives[directive] = (*kept, *sources)
        if nonce is not None:
            directives["style-src"] = (*directives["style-src"], f"'nonce-{nonce}'")
        return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


STRICT = PagePolicy()
"""The policy of an HTML answer no page below claims: nothing but the gateway's own scripts and styles."""

LIVE_VIEW = PagePolicy({"worker-src": ("'self'",)})  # the graph's layout runs in a worker, ui/graph-layout-worker.js
GRAPHIQL = PagePolicy({"font-src": ("data:",)}, style_nonce=True)  # fonts in its CSS; its dialogs write <style>
SWAGGER_UI = PagePolicy({"img-src": ("data:",)})  # the icons in its CSS
REDOC = PagePolicy(
    {"img-src": ("data:",), "worker-src": ("blob:",)},  # its link icons; the worker building its search index
    style_nonce=True,  # styled-components writes <style> as it renders
)


SIGN_IN = PagePolicy()
"""/auth/callback, where the identity provider sends the browser back: it connects to the token endpoint only."""


def signing_in(policy: PagePolicy, token_endpoint: str | None) -> PagePolicy:
    """`policy` allowing connections to the identity provider's token endpoint (that URL exactly), where a page
    trades a sign-in's code for a token; `policy` itself when the pages offer no sign-in."""
    if token_endpoint is None:
        return policy
    connect = (*policy.extra.get("connect-src", ()), token_endpoint)
    return PagePolicy({**policy.extra, "connect-src": connect}, policy.style_nonce)


def page_headers(policy: PagePolicy, nonce: str | None = None) -> dict[str, str]:
    """Every header a page is answered with."""
    return {"Content-Security-Policy": policy.header(nonce), **PAGE_HEADERS, **ANSWER_HEADERS}


def page_response(html: str, policy: PagePolicy) -> HTMLResponse:
    """A page with its policy; one that needs a nonce gets a fresh one in its HTML and its header, and is never
    stored by a cache (a nonce must not be served twice)."""
    if not policy.style_nonce:
        return HTMLResponse(html, headers=page_headers(policy))
    nonce = secrets.token_urlsafe(18)
    headers = {**page_headers(policy, nonce), "Cache-Control": "no-store"}
    return HTMLResponse(html.replace(NONCE_PLACEHOLDER, nonce), headers=headers)


class SecurityHeadersMiddleware:
    """nosniff on every answer; an HTML answer that no page route gave a policy gets the strict one, so that a
    page added without one is locked down rather than open."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_security_headers(list(message.get("headers", [])))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


_ANSWER = _encoded(ANSWER_HEADERS)
_STRICT_PAGE = _encoded({"Content-Security-Policy": STRICT.header(), **PAGE_HEADERS})


def _with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The answer's headers with nosniff, and an HTML answer's with the strict page headers it lacks."""
    names = {name.lower() for name, _ in headers}
    added = [header for header in _ANSWER if header[0] not in names]
    is_html = any(name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in headers)
    if is_html and b"content-security-policy" not in names:
        added += [header for header in _STRICT_PAGE if header[0] not in names]
    return headers + added
