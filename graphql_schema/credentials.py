"""The credential of a GraphQL request, by web.auth's one rule (one credential per request: an X-Auth-Token or an
`Authorization: Bearer`), over HTTP and WebSocket, where it may also come in the connection_init payload: two that
disagree are refused, never authenticated. A bearer token refused (web.bearer) is answered with its status and
challenge; a WebSocket authenticated with one ends when it expires."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from weakref import WeakKeyDictionary

from fastapi import FastAPI, Request, Response, WebSocket

from graphql_schema.context import Context
from graphql_schema.http import JSON_TYPE, error_response, response_media_type_or_json
from web.auth import TOKEN_FIELD, Callers, Credential, RepeatedCredential
from web.bearer import AUTHORIZATION_FIELD, BearerRefused, BearerToken, InvalidToken, parse_authorization

PAYLOAD_KEYS = (TOKEN_FIELD, TOKEN_FIELD.lower(), "token")
"""Where a connection_init payload may carry the token."""
BEARER_PAYLOAD_KEYS = (AUTHORIZATION_FIELD, AUTHORIZATION_FIELD.lower())
"""Where a connection_init payload may carry a bearer token (`"Authorization": "Bearer <JWT>"`), as browsers,
which cannot set an upgrade request's header fields, send it."""
CODE_OF_BEARER_STATUS = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 503: "UNAVAILABLE"}
CLOSE_CODE_OF_BEARER_STATUS = {401: 4401, 403: 4403, 503: 1013}
"""How a WebSocket whose bearer token is refused is closed: graphql-transport-ws's Unauthorized (4401) and
Forbidden (4403), and RFC 6455's Try Again Later (1013) while the issuer cannot be reached."""
MAX_CLOSE_REASON_BYTES = 123
"""The longest reason a close frame carries (RFC 6455 section 5.5: 125 bytes of payload, 2 of them the code)."""
AMBIGUOUS_CLOSE_CODE = 4400
"""graphql-transport-ws's close code for a request it cannot act on."""
AMBIGUOUS_PAYLOAD = f"{TOKEN_FIELD}: the connection_init payload names another token than the header, or several"


def payload_tokens(params: object) -> list[Credential]:
    """The credentials a connection_init payload names: strings under PAYLOAD_KEYS, around their white space, and
    bearer tokens under BEARER_PAYLOAD_KEYS."""
    if not isinstance(params, dict):
        return []
    values = (params.get(key) for key in PAYLOAD_KEYS)
    tokens: list[Credential] = [value.strip(" \t") for value in values if isinstance(value, str) and value.strip(" \t")]
    authorizations = (params.get(key) for key in BEARER_PAYLOAD_KEYS)
    return tokens + [_payload_bearer(value) for value in authorizations if isinstance(value, str) and value.strip()]


def _payload_bearer(value: str) -> BearerToken:
    """The bearer token of a payload's Authorization value; one that is not `Bearer <token68>` is kept whole, to be
    refused as a token that is no JWT (a payload cannot be answered 400 as a header field can)."""
    try:
        parsed = parse_authorization(value)
    except InvalidToken:
        parsed = None
    return parsed if parsed is not None else BearerToken(value.strip())


def ambiguous_payload(header_credential: Credential | None, params: object) -> str | None:
    """Why a connection_init must be refused: its payload names credentials that disagree with each other or with
    the upgrade request's; None when every credential given is the same one."""
    tokens = set(payload_tokens(params))
    if isinstance(header_credential, BearerToken):
        tokens.add(header_credential)
    elif header_credential is not None and header_credential.strip(" \t"):
        tokens.add(header_credential.strip(" \t"))
    return AMBIGUOUS_PAYLOAD if len(tokens) > 1 else None


def close_reason(message: str) -> str:
    """`message` cut to what a close frame can carry."""
    encoded = message.encode()
    return (
        message
        if len(encoded) <= MAX_CLOSE_REASON_BYTES
        else encoded[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."
    )


def bearer_refusal(refused: BearerRefused, media_type: str) -> Response:
    """A refused bearer token over HTTP: its status, `errors[]` with a code, and its challenge (WWW-Authenticate)
    or Retry-After."""
    code = CODE_OF_BEARER_STATUS.get(refused.status, "FORBIDDEN")
    return error_response(refused.status, refused.message, code, media_type, refused.headers())


async def refuse_bearer_upgrade(websocket: WebSocket, refused: BearerRefused) -> None:
    """A WebSocket upgrade whose Authorization header is refused: answered over HTTP as `bearer_refusal` where the
    server can (ASGI's WebSocket Denial Response), else closed before it is accepted."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(bearer_refusal(refused, JSON_TYPE))
    else:
        await websocket.close(
            code=CLOSE_CODE_OF_BEARER_STATUS.get(refused.status, 4403), reason=close_reason(refused.message)
        )


async def refuse_upgrade(websocket: WebSocket, error: RepeatedCredential) -> None:
    """A WebSocket upgrade with a repeated X-Auth-Token: answered 400 with a GraphQL error body where the server
    can answer an upgrade over HTTP (ASGI's WebSocket Denial Response, as uvicorn does), else closed with 4400
    before it is accepted."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(400, error.message, "BAD_REQUEST", JSON_TYPE))
    else:
        await websocket.close(code=AMBIGUOUS_CLOSE_CODE, reason=error.message)


async def _refuse_repeated(request: Request, error: Exception) -> Response:
    assert isinstance(error, RepeatedCredential)
    media_type = response_media_type_or_json(request.headers.get("accept"))
    return error_response(400, error.message, "BAD_REQUEST", media_type)


async def _refuse_bearer(request: Request, error: Exception) -> Response:
    assert isinstance(error, BearerRefused)
    return bearer_refusal(error, response_media_type_or_json(request.headers.get("accept")))


def install_repeated_credential_refusal(app: FastAPI) -> None:
    """A repeated credential on /graphql over HTTP: 400 with `errors[]` and the code BAD_REQUEST (/tracking
    answers it in its guard, with its own Error body); a refused bearer token likewise (`bearer_refusal`)."""
    app.add_exception_handler(RepeatedCredential, _refuse_repeated)
    app.add_exception_handler(BearerRefused, _refuse_bearer)


def presented_credential(params: object) -> Credential | None:
    """The credential of a WebSocket's connection_init payload (its credentials agree: `ambiguous_payload`)."""
    return next(iter(payload_tokens(params)), None)


async def payload_caller(context: Context, params: object) -> BearerRefused | None:
    """Grants the context the caller its connection_init payload names, when the upgrade named none; the refusal
    of a bearer token it names (web.bearer), to close the connection with."""
    if context.authenticated:
        return None
    credential = presented_credential(params)
    try:
        caller = await context.callers.resolve(credential)
    except BearerRefused as refused:
        return refused
    if caller is not None:
        context.grant(caller)
        context.credential = credential  # what `ending_with_credential` asks about again
    return None


EXPIRED_CLOSE_CODE = 4401
EXPIRED_REASON = "the bearer token has expired: connect again with a fresh one"


REVOKED_CLOSE_CODE = 4403
REVOKED_REASON = "the token has been revoked or has expired: connect again with a valid one"
TOKEN_RECHECK_S = 1.0
"""How often the API tokens of open WebSockets are looked up again (in memory: the named tokens every gateway
reloads within TRACKING_TOKENS_RELOAD_MS)."""

Close = Callable[[int, str], Coroutine[Any, Any, None]]
Stop = Callable[[], Awaitable[None]]


class RevocationWatch:
    """Closes the open WebSockets whose API token no longer names a caller (a named token revoked or expired):
    one loop for all of them, looking each distinct token up once every `recheck_s`. A fleet of dashboards on one
    token then costs one lookup a second, not one per connection: a loop per connection made a timer, futures
    and a lookup for every connection every second whatever changed, and those objects were much of what each
    young garbage collection walked."""

    def __init__(self, callers: Callers, recheck_s: float = TOKEN_RECHECK_S) -> None:
        self._callers = callers
        self._recheck_s = recheck_s
        self._open: dict[str, dict[int, Close]] = {}
        """The connections' close functions by their token, each under a key of its own."""
        self._loop: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def watch(self, credential: str, close: Close) -> Stop:
        """Close with `close` once `credential` no longer names a caller; the function returned stops that."""
        key = id(close)
        self._open.setdefault(credential, {})[key] = close
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._recheck(), name="API tokens of open WebSockets")

        async def stop() -> None:
            closes = self._open.get(credential)
            if closes is not None:
                closes.pop(key, None)
                if not closes:
                    del self._open[credential]
            if not self._open and self._loop is not None:
                loop, self._loop = self._loop, None
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)

        return stop

    async def _recheck(self) -> None:
        while self._open:
            await asyncio.sleep(self._recheck_s)
            for credential in list(self._open):
                if await self._callers.resolve(credential) is None:
                    for close in self._open.pop(credential, {}).values():
                        # Each in a task of its own: a peer slow to take its close frame holds up no other.
                        closing = asyncio.create_task(close(REVOKED_CLOSE_CODE, REVOKED_REASON))
                        self._closing.add(closing)
                        closing.add_done_callback(self._closing.discard)


_WATCHES: WeakKeyDictionary[Callers, RevocationWatch] = WeakKeyDictionary()
"""Each app's watch, by the Callers it looks tokens up with."""


def revocation_watch(callers: Callers) -> RevocationWatch:
    watch = _WATCHES.get(callers)
    if watch is None:
        watch = _WATCHES[callers] = RevocationWatch(callers)
    return watch


def ending_with_credential(websocket: Any, context: Context) -> Stop | None:
    """Close the connection when the credential it was authenticated with stops being valid, so that a caller
    whose access was taken away keeps neither a live feed nor a way to send operations: a bearer token at its
    expiry (4401: a sign-in ended, or the issuer stopped renewing it); an API token once it no longer names a
    caller (4403: a named token revoked or expired; see RevocationWatch). The function returned stops watching
    (when the connection ends); None without a caller."""
    caller = context.caller
    if caller is None:
        return None

    async def close(code: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # the connection may have ended meanwhile
            await websocket.close(code=code, reason=reason)

    if caller.expires_at is not None:
        return _cancelling(asyncio.create_task(_close_at(caller.expires_at, close)))
    if isinstance(context.credential, str):
        return revocation_watch(context.callers).watch(context.credential, close)
    return None


async def _close_at(expires_at: float, close: Close) -> None:
    await asyncio.sleep(max(0.0, expires_at - time.time()))
    await close(EXPIRED_CLOSE_CODE, EXPIRED_REASON)


def _cancelling(task: asyncio.Task[None]) -> Stop:
    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return stop


async def stopped(stop: Stop | None) -> None:
    if stop is not None:
        await stop()
