"""The bearer credential of RFC 6750: `Authorization: Bearer <token>`, and the refusals of one with their
`WWW-Authenticate` challenges. Which tokens are accepted is web.oidc's; who the caller is, web.auth's."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REALM = "tracking"
READ_SCOPE = "tracking:read"
WRITE_SCOPE = "tracking:write"
AUTHORIZATION_FIELD = "Authorization"
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)
"""RFC 6750 section 2.1: the scheme (case-insensitive), one or more spaces, a token68."""


class BearerRefused(Exception):
    """A bearer token that does not admit its request: the status and the `WWW-Authenticate` challenge (RFC 6750
    section 3) each front end answers it with, in its own body shape."""

    status = 401
    error = "invalid_token"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": challenge(self.error, self.message)}


class CannotJudgeNow(BearerRefused):
    """A credential that cannot be judged now (what it is checked against could not be had yet): answered 503 with
    Retry-After, never 401 or 403, which would tell a client holding a valid credential to throw it away."""

    status = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class InvalidToken(BearerRefused):
    """Not a JWT from the issuer, or not one for this gateway now: 401 invalid_token."""


class InsufficientScope(BearerRefused):
    """A valid token that does not allow what was asked (no tracking scope, or a write with tracking:read only):
    403 insufficient_scope, naming the scope needed."""

    status = 403
    error = "insufficient_scope"

    def __init__(self, message: str, scope: str) -> None:
        super().__init__(message)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": challenge(self.error, self.message, self.scope)}


MAX_DESCRIPTION = 200
"""The longest error_description sent: what a token names (its key id, say) is the sender's, and may be long."""


def _quoted(value: str) -> str:
    """A quoted-string of `value`: RFC 6750's error_description is printable ASCII without `"` or `\\`."""
    return '"' + "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "?" for c in value) + '"'


def challenge(error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
    """The `WWW-Authenticate` value of a refusal: `Bearer realm="tracking"` for a request without credentials,
    with `error` (and a description, and the scope needed) for a token that was refused."""
    params = [f"realm={_quoted(REALM)}"]
    if error is not None:
        params.append(f"error={_quoted(error)}")
    if description:
        shown = description if len(description) <= MAX_DESCRIPTION else description[: MAX_DESCRIPTION - 3] + "..."
        params.append(f"error_description={_quoted(shown)}")
    if scope:
        params.append(f"scope={_quoted(scope)}")
    return "Bearer " + ", ".join(params)


@dataclass(frozen=True)
class BearerToken:
    """A credential sent as `Authorization: Bearer <token>` (or so in a WebSocket's connection_init payload)."""

    token: str = field(repr=False)


def parse_authorization(value: str) -> BearerToken | None:
    """The bearer token of an `Authorization` value; None for another scheme (a proxy's Basic credentials are not
    the gateway's). InvalidToken when it says Bearer but holds no token68."""
    value = value.strip(" \t")
    if not value.lower().startswith("bearer"):
        return None
    matched = _BEARER.match(value)
    if matched is None:
        raise InvalidToken("the Authorization field holds no bearer token (expected `Bearer <JWT>`)")
    return BearerToken(matched.group(1))


def read_only_bearer() -> InsufficientScope:
    """The refusal of a change asked for with a bearer token whose scope allows reading only."""
    return InsufficientScope(f"this bearer token's scope allows reading only: changes need {WRITE_SCOPE}", WRITE_SCOPE)
