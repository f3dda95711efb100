"""API tokens: where they come from and how a presented one is checked."""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

TOKEN_FILE_NAME = "api-token"  # noqa: S105 - a file name, not a secret
VISIBLE_ASCII = frozenset(map(chr, range(0x21, 0x7F)))
"""What a token may hold: RFC 9110's VCHAR, the field-value characters every client can send as they are (no
space or tab, which a field value loses at its ends, no control, no byte past ASCII, which clients encode
differently: Latin-1, UTF-8 or not at all)."""


def token_problem(token: str) -> str | None:
    """Why `token` could never be presented in an X-Auth-Token header as written, or None. Names the
    character by its position and code point, never the token (it is a secret)."""
    for position, character in enumerate(token, start=1):
        if character not in VISIBLE_ASCII:
            return (
                f"character {position} is U+{ord(character):04X}: a token holds visible ASCII only "
                "(RFC 9110 VCHAR, 0x21-0x7E: no space, control or non-ASCII character)"
            )
    return None


TOKEN_FIELD = "X-Auth-Token"  # noqa: S105 - a header name
_TOKEN_FIELD_KEY = TOKEN_FIELD.lower().encode()  # ASGI header names are lower-case


class RepeatedCredential(Exception):
    """A request that carries more than one credential: refused with 400, never authenticated (a proxy in front
    may have checked another one than the gateway would)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def request_credential(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The credential of a request: its one X-Auth-Token, from the ASGI header list (HTTP request or WebSocket
    upgrade); None without one. RepeatedCredential when the field comes more than once, even twice with one value
    (a proxy may have added it, and which one a check in front read is unknowable), or when its value holds a
    comma: field lines a proxy joined (RFC 9110 section 5.3), since no configured token can hold one."""
    values = [value for name, value in headers if name == _TOKEN_FIELD_KEY]
    if len(values) > 1:
        raise RepeatedCredential(f"{TOKEN_FIELD}: sent {len(values)} times; send exactly one token per request")
    if not values:
        return None
    token = bytes(values[0]).decode("latin-1")
    if "," in token:
        raise RepeatedCredential(f"{TOKEN_FIELD}: several tokens joined with commas; send exactly one per request")
    return token


class Access(enum.Enum):
    """What a token allows: READ (TRACKING_READ_TOKENS) queries and subscriptions, WRITE (TRACKING_API_TOKENS)
    everything."""

    READ = "read"
    WRITE = "write"

    @property
    def may_write(self) -> bool:
        """Whether changes (REST writes, GraphQL mutations) are allowed."""
        return self is Access.WRITE


class TokenRegistry:
    """The accepted X-Auth-Token values (full access, and read-only), compared in constant time."""

    def __init__(self, tokens: Iterable[str], read_tokens: Iterable[str] = ()) -> None:
        self._tokens = [(token.encode(), Access.WRITE) for token in tokens]
        self._tokens += [(token.encode(), Access.READ) for token in read_tokens]
        if not self._tokens:
            raise ValueError("at least one API token is required")

    def access(self, presented: str | None) -> Access | None:
        """What the token may do; None for a missing or unknown one. Whitespace around it is no part of it (a
        field value excludes leading and trailing whitespace, RFC 9110 section 5.5)."""
        presented = presented.strip(" \t") if presented else None
        if not presented:
            return None
        candidate = presented.encode()
        # Compare against every token, without stopping early, so timing says nothing about which matched.
        granted = None
        for token, access in self._tokens:
            if hmac.compare_digest(candidate, token) and granted is not Access.WRITE:
                granted = access
        return granted

    def accepts(self, presented: str | None) -> bool:
        return self.access(presented) is not None


def caller_identity(token: str) -> str:
    """Who is calling, as the data the gateway keeps about a caller (a create's idempotency keys) names them:
    today a caller is its token, named by the SHA-256 of it (hex), so no token is ever stored. The one place
    that says who a caller is: named callers would change this function only."""
    return hashlib.sha256(token.strip(" \t").encode()).hexdigest()


def generated_token(data_dir: Path) -> tuple[str, Path]:
    """The token kept in `data_dir` (created on first use, readable by the owner only) and its path."""
    path = data_dir / TOKEN_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if token:
            return token, path
        descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    token = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path
