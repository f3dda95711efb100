"""The `Idempotency-Key` request header of `POST /tracking/task` (IETF draft "The Idempotency-Key HTTP Header
Field"): a Structured Field string (RFC 8941 section 3.3.3), `Idempotency-Key: "8e03978e-40d5-43e8-bc93"`. What a
key does is the graph store's (models.idempotency)."""

from __future__ import annotations

from fastapi import Request

from models import InvalidOperation
from models.idempotency import IDEMPOTENCY_KEY_MAX, IdempotencyKey, checked_key
from rest.negotiation import BadRequest
from web.auth import caller_identity
from web.state import request_caller

HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": (
        'A quoted string (RFC 8941), e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324": 1 to 255 visible ASCII '
        "characters. The same key and tasks again answer what the first create answered, storing nothing "
        "(TRACKING_IDEMPOTENCY_HOURS); other tasks: 422; while the first is in progress: 409."
    ),
    "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX + 2},
}
"""The header as the OpenAPI document describes it on createTasks."""


def idempotency_key(request: Request) -> IdempotencyKey | None:
    """The request's key, owned by its caller; None without the header. BadRequest naming the header for a
    value that is not one sf-string of an allowed key (several header lines are one list, hence refused)."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    try:
        key = checked_key(sf_string(", ".join(values)), HEADER)
    except InvalidOperation as error:
        raise BadRequest(error.message) from None
    caller = request_caller(request.scope)
    assert caller is not None  # rest.guard let the request through
    return IdempotencyKey(caller_identity(caller), key)


def sf_string(value: str) -> str:
    """The content of a Structured Field Item that is a bare sf-string (no parameters); InvalidOperation
    otherwise. Leading and trailing spaces around the item are no part of it (RFC 8941 section 4.2)."""
    text = value.strip(" ")
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise InvalidOperation(f'{HEADER}: expected a quoted string, such as "8e03978e-40d5-43e8" (RFC 8941)')
    content: list[str] = []
    escaped = False
    for position, char in enumerate(text[1:-1], start=1):
        if escaped:
            if char not in '"\\':
                raise InvalidOperation(f'{HEADER}: only \\" and \\\\ are escapes in a quoted string (RFC 8941)')
            content.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            raise InvalidOperation(
                f"{HEADER}: one quoted string expected, found more after character {position} (one key per request)"
            )
        else:
            content.append(char)
    if escaped:
        raise InvalidOperation(f"{HEADER}: the quoted string ends inside an escape (RFC 8941)")
    return "".join(content)
