"""OpenID Connect bearer tokens (RFC 6750): an `Authorization: Bearer <JWT>` from the configured issuer, verified with
PyJWT against the issuer's keys (web.oidc_keys), tells who is calling (`sub`, `iss`), what they may do (the scope
claim: tracking:read, tracking:write) and which jobs (the jobs claim; absent: all). Both front ends use it."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from prometheus_client import Counter

from web.auth import Access, Caller
from web.bearer import READ_SCOPE, WRITE_SCOPE, BearerRefused, BearerToken, InsufficientScope, InvalidToken
from web.oidc_keys import IssuerKeys, IssuerUnavailable, KeyPolicy

__all__ = ["ASYMMETRIC_ALGORITHMS", "IssuerUnavailable", "OidcConfig", "OidcVerifier", "VerifiedToken"]

KEY_TYPES = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
"""The asymmetric algorithms a token may be signed with, each with the key type (and curve) it needs: a key is
only ever used with an algorithm of its own type, so a public key can never serve as an HMAC secret."""
ASYMMETRIC_ALGORITHMS = tuple(KEY_TYPES)
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
DEFAULT_LEEWAY_S = 30
DEFAULT_KEYS_MAX_AGE_S = 3600
DEFAULT_KEYS_MIN_INTERVAL_S = 30
DEFAULT_HTTP_TIMEOUT_MS = 5000
BEARER_TOKENS = Counter(
    "tracking_bearer_tokens_total",
    "Bearer tokens judged: accepted, invalid_token, insufficient_scope, or unavailable (the issuer's keys could "
    "not be fetched).",
    ["outcome"],
)
MAX_JOB_PREFIXES = 1000
"""The most job prefixes a token may carry: the job filter is one MongoDB condition per prefix."""


MAX_SUBJECT = 255
"""OpenID Connect Core: a subject is at most 255 ASCII characters. It names the caller in logs, metrics and the
history's actors: a control character in it would let a caller forge log lines."""


def is_subject(value: object) -> bool:
    """Whether a `sub` claim is 1 to MAX_SUBJECT printable ASCII characters (space to tilde)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_SUBJECT and value.isascii() and value.isprintable()


@dataclass(frozen=True)
class OidcConfig:
    """The TRACKING_OIDC_* settings that verify a token."""

    issuer: str
    audience: str
    scope_claim: str = "scope"
    jobs_claim: str = "tracking_jobs"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_s: float = DEFAULT_LEEWAY_S
    keys_max_age_s: float = DEFAULT_KEYS_MAX_AGE_S
    keys_min_interval_s: float = DEFAULT_KEYS_MIN_INTERVAL_S
    http_timeout_ms: int = DEFAULT_HTTP_TIMEOUT_MS
    client_id: str | None = None
    """The pages' client at the issuer (TRACKING_OIDC_CLIENT_ID): with one, they offer "Sign in"."""

    def __post_init__(self) -> None:
        refused = [algorithm for algorithm in self.algorithms if algorithm not in KEY_TYPES]
        if refused:
            raise ValueError(
                f"not an asymmetric signature algorithm: {', '.join(refused)} (allowed: {', '.join(KEY_TYPES)})"
            )

    @property
    def key_policy(self) -> KeyPolicy:
        return KeyPolicy(self.keys_max_age_s, self.keys_min_interval_s, self.http_timeout_ms / 1000)


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified token says: who (`sub` at `iss`), what (`access`), which jobs (None: all)."""

    subject: str
    issuer: str
    access: Access
    jobs: tuple[str, ...] | None
    expires_at: float


class OidcVerifier:
    """Verifies bearer tokens against the issuer's keys (fetched as web.oidc_keys says)."""

    def __init__(self, config: OidcConfig, keys: IssuerKeys | None = None) -> None:
        self.config = config
        self.keys = keys or IssuerKeys(config.issuer, config.key_policy)
        self._jwt = jwt.PyJWT({"enforce_minimum_key_length": True})

    @property
    def page_token_endpoint(self) -> str | None:
        """Where the pages trade a sign-in's code for a token, once the discovery document has been read; None
        when the pages offer no sign-in (their policy then allows no connection to the issuer)."""
        metadata = self.keys.metadata
        return metadata.token_endpoint if self.config.client_id is not None and metadata is not None else None

    async def warm_up(self) -> None:
        """Fetch the keys before the first token comes; an issuer that cannot be reached is logged (by
        web.oidc_keys) and asked again when tokens come, as the interval allows."""
        with contextlib.suppress(IssuerUnavailable):
            await self.keys.refresh()

    async def caller(self, bearer: BearerToken) -> Caller:
        """The caller a bearer token names (web.auth.BearerSource): its `sub` at its issuer."""
        try:
            verified = await self.verify(bearer.token)
        except BearerRefused as refused:
            BEARER_TOKENS.labels("unavailable" if isinstance(refused, IssuerUnavailable) else refused.error).inc()
            raise
        BEARER_TOKENS.labels("accepted").inc()
        expires_at = verified.expires_at + self.config.leeway_s  # when `verify` would refuse it
        return Caller(verified.subject, verified.access, verified.jobs, verified.issuer, expires_at=expires_at)

    async def verify(self, token: str) -> VerifiedToken:
        """The token's caller; InvalidToken (401) for anything but a current token of the issuer for this
        audience, signed by one of its keys with an allowed algorithm; InsufficientScope (403) for one that
        grants no tracking scope; IssuerUnavailable (503) when the keys needed cannot be fetched."""
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            accepted = ", ".join(self.config.algorithms)
            raise InvalidToken(f"algorithm {algorithm!r} is not accepted (TRACKING_OIDC_ALGORITHMS: {accepted})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the key id (kid) is not a string")
        candidates = [key for key in await self.keys.matching(kid) if _fits(key, algorithm)]
        if not candidates:
            raise InvalidToken(f"no key of the issuer has key id {_shown(kid)} for {algorithm}")
        if kid is None and len(candidates) > 1:
            raise InvalidToken("the token names no key id (kid) and the issuer has several keys")
        claims = self._decode(token, _key(candidates[0], algorithm), algorithm)
        return VerifiedToken(
            subject=claims["sub"],
            issuer=claims["iss"],
            access=self._access(claims),
            jobs=self._jobs(claims),
            expires_at=float(claims["exp"]),
        )

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        try:
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not for this audience ({self.config.audience!r})") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token is not from the issuer {self.config.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify with the issuer's key") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"the token has no {error.claim!r} claim") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"the token is not valid: {error}") from None
        if not is_subject(claims.get("sub")):
            raise InvalidToken(
                f"the token's sub claim is not 1 to {MAX_SUBJECT} printable ASCII characters (OpenID Connect Core)"
            )
        if type(claims["exp"]) not in (int, float):  # PyJWT also takes a string of digits
            raise InvalidToken("the token's exp claim is not a number (RFC 7519 NumericDate)")
        return claims

    def _access(self, claims: Mapping[str, Any]) -> Access:
        """tracking:write allows everything, tracking:read queries and subscriptions; a scope claim that is a
        space-separated string (RFC 9068) or a list of strings (as some issuers write `scp`)."""
        name = self.config.scope_claim
        value = claims.get(name, "")
        if isinstance(value, str):
            scopes = set(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            scopes = set(value)
        else:
            raise InvalidToken(f"the {name} claim is neither a string nor a list of strings")
        if WRITE_SCOPE in scopes:
            return Access.WRITE
        if READ_SCOPE in scopes:
            return Access.READ
        raise InsufficientScope(
            f"the token's {name} claim grants neither {READ_SCOPE} nor {WRITE_SCOPE} (TRACKING_OIDC_SCOPE_CLAIM)",
            READ_SCOPE,
        )

    def _jobs(self, claims: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The job-id prefixes the token is limited to; None (all jobs) without the claim. A claim of another
        shape is refused, never read as all jobs."""
        name = self.config.jobs_claim
        if name not in claims:
            return None
        value = claims[name]
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise InvalidToken(
                f"the {name} claim is not a list of non-empty job-id prefixes (TRACKING_OIDC_JOBS_CLAIM)"
            )
        if len(value) > MAX_JOB_PREFIXES:
            raise InvalidToken(f"the {name} claim holds more than {MAX_JOB_PREFIXES} job-id prefixes")
        return tuple(dict.fromkeys(value))


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidToken(f"the bearer token is not a JWT: {error}") from None


def _fits(key: Mapping[str, Any], algorithm: str) -> bool:
    """Whether `key` may verify a token signed with `algorithm`: its type (and curve) is the algorithm's, and its
    own `alg`, when it names one, is that algorithm."""
    kty, crv = KEY_TYPES[algorithm]
    if key.get("kty") != kty or (crv is not None and key.get("crv") != crv):
        return False
    return bool(key.get("alg", algorithm) == algorithm)


def _key(jwk: dict[str, Any], algorithm: str) -> jwt.PyJWK:
    try:
        return jwt.PyJWK(jwk, algorithm)
    except jwt.PyJWTError as error:
        raise InvalidToken(f"the issuer's key {jwk.get('kid')!r} is unusable: {error}") from None


def _shown(value: str | None, most: int = 64) -> str:
    """What a token names (its key id), as an error message shows it: quoted, and cut when long."""
    shown = repr(value)
    return shown if len(shown) <= most else shown[: most - 4] + "...'"
