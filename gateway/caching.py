"""What caches may do with the gateway's answers (RFC 9111): nothing that needed a token is stored anywhere, and
every answer chosen by Accept says so.

Every answer under the token-gated paths (/tracking/…, /graphql) carries `Cache-Control: no-store`, refusals
included (400, 403, 404, 412, 413, the last-resort 500): `private` would still let a browser's cache keep task
data on a shared workstation, and a proxy that ignores `private` would serve one caller's tasks to another. The
same answers carry `Vary: Accept` (merged into a Vary another layer set, such as CORS's `Origin`): /tracking
answers JSON or XML and /graphql two media types (or GraphiQL's page) by Accept, errors included, so even a
cache that ignores no-store must not answer one Accept with another's representation. Public answers (health
probes, metrics, static assets, the pages, /openapi.json) are left as they are."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE = b"no-store"
_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})


def with_cache_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The answer's headers with `Cache-Control: no-store` (replacing any other) and one Vary line naming Accept
    besides whatever the answer already varied on (`*` stays alone: it already covers Accept)."""
    kept: list[tuple[bytes, bytes]] = []
    varies: list[bytes] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"vary":
            varies.extend(part.strip() for part in value.split(b",") if part.strip())
        elif lowered != b"cache-control":
            kept.append((name, value))
    names = {part.lower() for part in varies}
    if b"*" not in names and b"accept" not in names:
        varies.append(b"Accept")
    vary = b"*" if b"*" in names else b", ".join(dict.fromkeys(varies))
    return [*kept, (b"cache-control", NO_STORE), (b"vary", vary)]


class CacheHeaders:
    """Pure ASGI: `with_cache_headers` on every answer to a request whose path `gated` says needs a token (the
    WebSocket upgrade refused with an HTTP answer included). It sits outside every other layer, so that the
    answers they give on their own (a refused token, the body limit, a last-resort 500) are covered too."""

    def __init__(self, app: ASGIApp, gated: Callable[[str], bool]) -> None:
        self.app = app
        self.gated = gated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.gated(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_uncached(message: Message) -> None:
            if message["type"] in _STARTS:
                message = {**message, "headers": with_cache_headers(message.get("headers", ()))}
            await send(message)

        await self.app(scope, receive, send_uncached)
