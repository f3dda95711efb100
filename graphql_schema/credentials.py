"""The credential of a GraphQL request, by web.auth's one rule (one X-Auth-Token per request), over HTTP and
WebSocket, where a token may also come in the connection_init payload: two that disagree are refused, never
authenticated."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response, WebSocket

from graphql_schema.http import JSON_TYPE, error_response, response_media_type_or_json
from web.auth import TOKEN_FIELD, RepeatedCredential

PAYLOAD_KEYS = (TOKEN_FIELD, TOKEN_FIELD.lower(), "token")
"""Where a connection_init payload may carry the token."""
AMBIGUOUS_CLOSE_CODE = 4400
"""graphql-transport-ws's close code for a request it cannot act on."""
AMBIGUOUS_PAYLOAD = f"{TOKEN_FIELD}: the connection_init payload names another token than the header, or several"


def payload_tokens(params: object) -> list[str]:
    """The tokens a connection_init payload names (strings under PAYLOAD_KEYS), around their white space."""
    if not isinstance(params, dict):
        return []
    values = (params.get(key) for key in PAYLOAD_KEYS)
    return [value.strip(" \t") for value in values if isinstance(value, str) and value.strip(" \t")]


def ambiguous_payload(header_token: str | None, params: object) -> str | None:
    """Why a connection_init must be refused: its payload names tokens that disagree with each other or with the
    upgrade request's X-Auth-Token; None when every token given names the same one."""
    tokens = set(payload_tokens(params))
    if header_token is not None and header_token.strip(" \t"):
        tokens.add(header_token.strip(" \t"))
    return AMBIGUOUS_PAYLOAD if len(tokens) > 1 else None


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


def install_repeated_credential_refusal(app: FastAPI) -> None:
    """A repeated X-Auth-Token on /graphql over HTTP: 400 with `errors[]` and the code BAD_REQUEST (/tracking
    answers it in its guard, with its own Error body)."""
    app.add_exception_handler(RepeatedCredential, _refuse_repeated)
