"""The signing keys of an OpenID Connect issuer: read from its discovery document and JWKS over HTTP (httpx, with a
timeout and a size bound), kept in memory, fetched again when they are old or a token names a key id they lack,
never more often than once per TRACKING_OIDC_KEYS_MIN_INTERVAL_S (so that tokens with made-up key ids cannot turn
the gateway against its issuer). A failed fetch keeps the keys held before it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from prometheus_client import Counter

from web.bearer import CannotJudgeNow

LOGGER = logging.getLogger("tracking.oidc")
DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_DOCUMENT_BYTES = 512 * 1024
"""The most a discovery document or a JWKS may hold: real ones are a few kilobytes; more is refused unread."""


KEY_FETCHES = Counter(
    "tracking_oidc_key_fetches_total", "Fetches of the OpenID issuer's discovery document and keys.", ["outcome"]
)
_UNSAFE_IN_URL = frozenset(" \t\r\n\"',;")


class IssuerUnavailable(CannotJudgeNow):
    """The issuer's keys could not be had (never fetched yet, or the fetch failed): a token cannot be judged
    now (503 with Retry-After)."""


class KeyFetchFailed(Exception):
    """One fetch of the discovery document or the JWKS failed; the message says which and why."""


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine (localhost or a loopback address), where plain http is allowed."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why `url` may not be used to fetch keys or sign in, or None: https, or http on loopback only (a key fetched
    over plain http from elsewhere could be anyone's)."""
    if any(character in _UNSAFE_IN_URL for character in url):
        return f"{url!r} holds a space, quote, comma or semicolon (a URL the pages' policy could not name as it is)"
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and is_loopback(url):
        return None
    return f"{url!r} is not an https:// URL (plain http:// is accepted for localhost and loopback addresses only)"


@dataclass(frozen=True)
class IssuerMetadata:
    """What the gateway reads from the discovery document: where the keys are, and where a page signs in."""

    jwks_uri: str
    authorization_endpoint: str | None
    token_endpoint: str | None


@dataclass(frozen=True)
class KeyPolicy:
    """How keys are fetched: TRACKING_OIDC_KEYS_MAX_AGE_S, TRACKING_OIDC_KEYS_MIN_INTERVAL_S and
    TRACKING_OIDC_HTTP_TIMEOUT_MS."""

    max_age_s: float
    min_interval_s: float
    timeout_s: float


class IssuerKeys:
    """The issuer's signing keys (JWKs by key id), fetched lazily and at most once per min_interval_s."""

    def __init__(
        self,
        issuer: str,
        policy: KeyPolicy,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.policy = policy
        self._client = client or httpx.AsyncClient(timeout=policy.timeout_s, follow_redirects=False)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: list[dict[str, Any]] | None = None
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._background: asyncio.Task[None] | None = None
        self.metadata: IssuerMetadata | None = None
        """The discovery document's endpoints, once it has been read."""
        self.last_failure: str | None = None
        """Why the last fetch failed; None once one succeeded."""

    async def aclose(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        await self._client.aclose()

    async def matching(self, kid: str | None) -> list[dict[str, Any]]:
        """The keys a token's `kid` names (every key when it names none). Fetches first when no keys are held, and
        again when none matches, as rate allows; keys older than max_age_s are used while they are fetched again
        in the background (a slow issuer never holds up tokens it signed with a key the gateway has).
        IssuerUnavailable when no keys could ever be fetched."""
        if self._keys is None:
            await self.refresh()
        elif self._stale() and (self._background is None or self._background.done()):
            self._background = asyncio.create_task(self._refresh_quietly())
        found = self._matching(kid)
        if not found and not await self.refresh() and self.last_failure is not None:
            # The issuer may have rotated to this key while it cannot be reached: no judgement either way.
            wait = max(1, round(self.policy.min_interval_s))
            shown = repr(kid) if kid is None or len(kid) <= 64 else repr(kid[:60] + "...")
            raise IssuerUnavailable(
                f"key id {shown} is unknown and the issuer cannot be asked: {self.last_failure}", wait
            )
        return found or self._matching(kid)

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(IssuerUnavailable):
            await self.refresh()

    async def refresh(self) -> bool:
        """Fetch the keys unless a fetch was tried less than min_interval_s ago (then nothing is asked). Waiters
        for a fetch in progress share it. Returns whether this call fetched them."""
        async with self._lock:
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self.policy.min_interval_s:
                self._raise_if_never_fetched(now)
                return False
            self._attempted_at = now
            try:
                self.metadata = await self._discover()
                self._keys = await self._fetch_keys(self.metadata.jwks_uri)
            except KeyFetchFailed as failure:
                self.last_failure = str(failure)
                KEY_FETCHES.labels("failed").inc()
                LOGGER.warning("OpenID Connect keys not fetched (keeping those held, if any): %s", failure)
                self._raise_if_never_fetched(now)
                return False
            self._fetched_at, self.last_failure = now, None
            KEY_FETCHES.labels("fetched").inc()
            LOGGER.info("OpenID Connect keys fetched from %s: %d key(s)", self.metadata.jwks_uri, len(self._keys))
            return True

    def _raise_if_never_fetched(self, now: float) -> None:
        if self._keys is None:
            attempted = self._attempted_at if self._attempted_at is not None else now
            wait = max(1, round(self.policy.min_interval_s - (now - attempted)))
            reason = f": {self.last_failure}" if self.last_failure else ""
            raise IssuerUnavailable(f"the issuer's keys could not be fetched yet{reason}", wait)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self.policy.max_age_s

    def _matching(self, kid: str | None) -> list[dict[str, Any]]:
        keys = self._keys or []
        return list(keys) if kid is None else [key for key in keys if key.get("kid") == kid]

    async def _discover(self) -> IssuerMetadata:
        """The discovery document, checked as OpenID Connect Discovery 1.0 section 4.3 asks: its `issuer` is
        exactly the configured one, and its URLs are https (http on loopback only)."""
        document = await self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH, "discovery document")
        if document.get("issuer") != self.issuer:
            raise KeyFetchFailed(
                f"the discovery document names issuer {document.get('issuer')!r}, not {self.issuer!r} "
                "(TRACKING_OIDC_ISSUER must be exactly the issuer's own identifier)"
            )
        jwks_uri = _url_field(document, "jwks_uri", required=True)
        assert jwks_uri is not None
        return IssuerMetadata(
            jwks_uri=jwks_uri,
            authorization_endpoint=_url_field(document, "authorization_endpoint"),
            token_endpoint=_url_field(document, "token_endpoint"),
        )

    async def _fetch_keys(self, jwks_uri: str) -> list[dict[str, Any]]:
        """The signing keys of the JWKS: keys meant for encryption (`use: enc`) are left out."""
        document = await self._get_json(jwks_uri, "JWKS")
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise KeyFetchFailed(f"the JWKS at {jwks_uri} has no `keys` list")
        return [key for key in keys if isinstance(key, dict) and key.get("use", "sig") == "sig"]

    async def _get_json(self, url: str, what: str) -> Mapping[str, Any]:
        try:
            async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise KeyFetchFailed(f"{what} {url}: HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise KeyFetchFailed(f"{what} {url}: larger than {MAX_DOCUMENT_BYTES} bytes")
        except httpx.HTTPError as error:
            raise KeyFetchFailed(f"{what} {url}: {type(error).__name__}: {error}") from None
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise KeyFetchFailed(f"{what} {url}: not JSON ({error})") from None
        if not isinstance(document, dict):
            raise KeyFetchFailed(f"{what} {url}: not a JSON object")
        return document


def _url_field(document: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise KeyFetchFailed(f"the discovery document has no {name}")
    problem = url_problem(value)
    if problem is not None:
        raise KeyFetchFailed(f"the discovery document's {name}: {problem}")
    return value
