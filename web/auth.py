"""Callers: who presents a credential (an API token from the environment or a named one, or a JWT) and what they
may do, resolved in one place (`Callers`) for every interface."""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from web.bearer import AUTHORIZATION_FIELD, BearerToken, InvalidToken, challenge, parse_authorization

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


_AUTHORIZATION_KEY = AUTHORIZATION_FIELD.lower().encode()


def request_bearer(headers: Iterable[tuple[bytes, bytes]]) -> BearerToken | None:
    """The bearer token of a request's one `Authorization` field (web.bearer), by the rule of `request_credential`:
    RepeatedCredential when the field comes more than once; None without one, or with another scheme."""
    values = [value for name, value in headers if name == _AUTHORIZATION_KEY]
    if len(values) > 1:
        raise RepeatedCredential(f"{AUTHORIZATION_FIELD}: sent {len(values)} times; send exactly one per request")
    return parse_authorization(bytes(values[0]).decode("latin-1")) if values else None


Credential = str | BearerToken
"""What a request presents: an API token (X-Auth-Token) or a bearer token (Authorization: Bearer)."""


class Access(enum.Enum):
    """What a caller may do: READ queries and subscriptions (TRACKING_READ_TOKENS, `token create --read-only`),
    WRITE everything."""

    READ = "read"
    WRITE = "write"

    @property
    def may_write(self) -> bool:
        """Whether changes (REST writes, GraphQL mutations) are allowed."""
        return self is Access.WRITE


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, and what they may do: what every interface reads once the credential was checked."""

    name: str
    """The token's name ("env-api-1", "env-read-1" for the environment's tokens, in their order); a JWT's `sub`."""
    access: Access
    jobs: tuple[str, ...] | None = None
    """The job-id prefixes whose tasks it may see and change; None: every job (and tasks without one)."""
    issuer: str | None = None
    """The OpenID issuer of a JWT caller; None for tokens."""
    rate: float | None = None
    """Requests per second allowed; None: the default."""
    expires_at: float | None = field(default=None, compare=False)
    """When the credential stops being accepted (a JWT's `exp` and the leeway, epoch seconds): a WebSocket
    authenticated with it is closed then. None: when it is revoked. No part of who the caller is."""

    @property
    def may_write(self) -> bool:
        return self.access.may_write


ENVIRONMENT_NAME_PREFIX = "env-"
"""Names of the environment's tokens ("env-api-1", "env-read-1"); no named token may take one."""


def environment_name(access: Access, number: int) -> str:
    """The name of the environment's `number`th token (from 1) of TRACKING_API_TOKENS or TRACKING_READ_TOKENS."""
    return f"{ENVIRONMENT_NAME_PREFIX}{'api' if access is Access.WRITE else 'read'}-{number}"


def read_only_refusal(caller: Caller | None) -> str:
    """Why a change asked for by a read-only token caller is refused, naming where its read-only access comes
    from: the environment's TRACKING_READ_TOKENS, or the named token's `--read-only`."""
    if caller is None or caller.name.startswith(ENVIRONMENT_NAME_PREFIX):
        return "this X-Auth-Token may only read (TRACKING_READ_TOKENS): changes need a TRACKING_API_TOKENS one"
    return (
        f"this X-Auth-Token may only read (token {caller.name!r} was created with `token create --read-only`): "
        "changes need a token with write access"
    )


class TokenRegistry:
    """The environment's tokens (TRACKING_API_TOKENS with full access, TRACKING_READ_TOKENS read-only), each a
    Caller named by its place (`environment_name`), compared in constant time."""

    def __init__(self, tokens: Iterable[str], read_tokens: Iterable[str] = ()) -> None:
        self._tokens = [
            (token.encode(), Caller(environment_name(access, number), access))
            for access, given in ((Access.WRITE, tokens), (Access.READ, read_tokens))
            for number, token in enumerate(given, start=1)
        ]
        if not self._tokens:
            raise ValueError("at least one API token is required")

    def caller(self, presented: str | None) -> Caller | None:
        """Who presents this token; None for a missing or unknown one. Whitespace around it is no part of it (a
        field value excludes leading and trailing whitespace, RFC 9110 section 5.5). A token given in both
        variables is the full-access one."""
        presented = presented.strip(" \t") if presented else None
        if not presented:
            return None
        candidate = presented.encode()
        # Compare against every token, without stopping early, so timing says nothing about which matched.
        granted: Caller | None = None
        for token, caller in self._tokens:
            if hmac.compare_digest(candidate, token) and (granted is None or not granted.may_write):
                granted = caller
        return granted

    def access(self, presented: str | None) -> Access | None:
        """What the token may do; None for a missing or unknown one."""
        caller = self.caller(presented)
        return caller.access if caller is not None else None

    def accepts(self, presented: str | None) -> bool:
        return self.caller(presented) is not None


class CallerSource(Protocol):
    """Somewhere callers are known beside the environment (named tokens in MongoDB, an OpenID issuer)."""

    async def caller(self, credential: str) -> Caller | None:
        """Who presents `credential` (stripped, not empty); None when this source does not know it."""
        ...


class BearerSource(Protocol):
    """Who presents a bearer token (web.oidc: an OpenID Connect issuer's JWTs)."""

    async def caller(self, bearer: BearerToken) -> Caller:
        """The token's caller; raises web.bearer.BearerRefused (401, 403 or 503) for a token it does not admit."""
        ...


class Callers:
    """The one place a request's credential becomes its Caller (or None), for REST, GraphQL over HTTP and
    WebSocket alike: the environment's tokens first (no I/O), then each other source in turn; a bearer token goes
    to the bearer source (None without one: no bearer token is then a credential)."""

    def __init__(self, environment: TokenRegistry, *sources: CallerSource, bearer: BearerSource | None = None) -> None:
        self.environment = environment
        self.sources = list(sources)
        self.bearer = bearer

    @property
    def challenge(self) -> str | None:
        """The `WWW-Authenticate` of an answer refusing a request without credentials, when bearer tokens are
        accepted (RFC 6750 section 3); None otherwise (X-Auth-Token is no HTTP authentication scheme)."""
        return challenge() if self.bearer is not None else None

    async def resolve(self, credential: Credential | None) -> Caller | None:
        """Who presents `credential`; None for a missing or unknown one. A bearer token the bearer source does not
        admit raises web.bearer.BearerRefused."""
        if isinstance(credential, BearerToken):
            return await self.bearer.caller(credential) if self.bearer is not None else None
        credential = credential.strip(" \t") if credential else None
        if not credential:
            return None
        found = self.environment.caller(credential)
        for source in self.sources:
            if found is not None:
                break
            found = await source.caller(credential)
        return found

    async def of_request(self, headers: Iterable[tuple[bytes, bytes]]) -> Caller | None:
        """The caller of a request or WebSocket upgrade by its one credential (`credential`, which raises
        RepeatedCredential); None without a known one."""
        return await self.resolve(self.credential(headers))

    def credential(self, headers: Iterable[tuple[bytes, bytes]]) -> Credential | None:
        """A request's one credential: its X-Auth-Token, or its bearer token when bearer tokens are accepted (else
        the Authorization field is not the gateway's: a proxy's, say). RepeatedCredential for a repeated field,
        and for both at once (which one a proxy in front checked is unknowable)."""
        headers = list(headers)
        token = request_credential(headers)
        if self.bearer is None:
            return token
        try:
            bearer = request_bearer(headers)
        except InvalidToken:  # a malformed bearer beside a token is still two credentials: that refusal comes first
            if token is not None:
                raise _both_credentials() from None
            raise
        if token is not None and bearer is not None:
            raise _both_credentials()
        return bearer if bearer is not None else token


def _both_credentials() -> RepeatedCredential:
    return RepeatedCredential(f"send either {TOKEN_FIELD} or {AUTHORIZATION_FIELD}: Bearer, not both")


def caller_identity(caller: Caller) -> str:
    """Who is calling, as the data the gateway keeps about a caller (a create's idempotency keys) names them: the
    SHA-256 (hex) of the caller's issuer and name, so a token and a JWT subject of the same name, or the subjects
    of two issuers, are never one caller, and a token renewed under its name keeps its keys. The one place that
    says who owns such data."""
    return hashlib.sha256(json.dumps([caller.issuer, caller.name]).encode()).hexdigest()


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
