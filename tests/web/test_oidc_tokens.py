"""Bearer JWTs judged by web.oidc against a real issuer served over HTTP (tests/oidc_issuer.py): a current token of
the issuer for the audience is its caller; every forged kind is InvalidToken; the keys are fetched as rated."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers import eventually
from tests.oidc_issuer import AUDIENCE, Issuer, ec_key, ed_key, rsa_key, running_issuer
from web.auth import Access, Callers, RepeatedCredential, TokenRegistry, request_bearer
from web.bearer import BearerToken, InsufficientScope, InvalidToken, challenge
from web.oidc import IssuerUnavailable, OidcConfig, OidcVerifier
from web.oidc_keys import IssuerKeys


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None = None) -> str:
    """A JWT of `header` and `claims`, HMAC-SHA256 signed with `secret` (None: no signature at all)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer(rsa_key("rsa-1"), ec_key("ec-1"), ed_key("ed-1")) as served:
        yield served


def config(served: Issuer, **overrides: Any) -> OidcConfig:
    return OidcConfig(**{"issuer": served.url, "audience": AUDIENCE, "keys_min_interval_s": 60, **overrides})


class Clock:
    """The key cache's clock, moved by the test: the intervals between fetches pass without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def clocked(issuer: Issuer, clock: Clock, **overrides: Any) -> OidcVerifier:
    settings = config(issuer, **overrides)
    return OidcVerifier(settings, IssuerKeys(settings.issuer, settings.key_policy, clock=clock))


@pytest.fixture
async def verifier(issuer: Issuer) -> AsyncIterator[OidcVerifier]:
    checker = OidcVerifier(config(issuer))
    yield checker
    await checker.keys.aclose()


@pytest.mark.parametrize("index", [0, 1, 2], ids=["RS256", "ES256", "EdDSA"])
async def test_a_current_token_of_the_issuer_names_its_caller(issuer: Issuer, verifier: OidcVerifier, index: int):
    verified = await verifier.verify(issuer.token(issuer.keys[index], sub="alice@example.com"))
    assert (verified.subject, verified.issuer, verified.access, verified.jobs) == (
        "alice@example.com",
        issuer.url,
        Access.WRITE,
        None,
    )


@pytest.mark.parametrize(
    ("scope", "access"),
    [
        ("tracking:read", Access.READ),
        ("openid tracking:write", Access.WRITE),
        ("tracking:read tracking:write", Access.WRITE),
        (["tracking:read"], Access.READ),
    ],
)
async def test_access_comes_from_the_scope_claim(issuer: Issuer, verifier: OidcVerifier, scope: Any, access: Access):
    assert (await verifier.verify(issuer.token(scope=scope))).access is access


async def test_the_scope_claim_name_is_a_setting(issuer: Issuer):
    checker = OidcVerifier(config(issuer, scope_claim="scp"))
    try:
        verified = await checker.verify(issuer.token(scope=None, scp=["tracking:read"]))
        assert verified.access is Access.READ
        with pytest.raises(InsufficientScope):
            await checker.verify(issuer.token(scope="tracking:write"))  # `scope` is not the claim read
    finally:
        await checker.keys.aclose()


@pytest.mark.parametrize("scope", ["", "openid profile", "tracking:admin", "tracking:readtracking:write"])
async def test_a_token_without_a_tracking_scope_is_insufficient(issuer: Issuer, verifier: OidcVerifier, scope: str):
    with pytest.raises(InsufficientScope) as refused:
        await verifier.verify(issuer.token(scope=scope))
    assert refused.value.status == 403
    assert refused.value.headers()["WWW-Authenticate"].startswith('Bearer realm="tracking", error="insufficient_scope"')


async def test_job_prefixes_come_from_the_jobs_claim(issuer: Issuer, verifier: OidcVerifier):
    assert (await verifier.verify(issuer.token(tracking_jobs=["team-a/", "b"]))).jobs == ("team-a/", "b")
    assert (await verifier.verify(issuer.token(tracking_jobs=[]))).jobs == ()  # no job at all, not every job
    checker = OidcVerifier(config(issuer, jobs_claim="groups"))
    try:
        assert (await checker.verify(issuer.token(groups=["ops-"], tracking_jobs=["x"]))).jobs == ("ops-",)
    finally:
        await checker.keys.aclose()


@pytest.mark.parametrize("claim", ["team-a", [""], ["a", 3], {"a": 1}, 7])
async def test_a_jobs_claim_of_another_shape_is_refused_never_read_as_all_jobs(
    issuer: Issuer, verifier: OidcVerifier, claim: Any
):
    with pytest.raises(InvalidToken, match="tracking_jobs"):
        await verifier.verify(issuer.token(tracking_jobs=claim))


def forged(issuer: Issuer) -> dict[str, str]:
    """Every kind of token the gateway must refuse, by what is wrong with it."""
    now = int(time.time())
    good = issuer.keys[0]
    pem = good.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = issuer.claims()
    stranger = rsa_key(good.kid)  # same key id, another key
    header = {"alg": "HS256", "typ": "JWT", "kid": good.kid}
    valid = issuer.token()
    head, body, signature = valid.split(".")
    tampered_body = b64(json.dumps({**claims, "sub": "mallory"}).encode())
    return {
        "expired": issuer.token(exp=now - 120, iat=now - 3720),
        "not yet valid (nbf)": issuer.token(nbf=now + 600),
        "issued in the future (iat)": issuer.token(iat=now + 600),
        "wrong audience": issuer.token(aud="another-api"),
        "wrong issuer": issuer.token(iss="https://issuer.example"),
        "issuer with a trailing slash": issuer.token(iss=issuer.url + "/"),
        "no exp": issuer.token(exp=None),
        "no sub": issuer.token(sub=None),
        "empty sub": issuer.token(sub=""),
        # A subject names the caller in log lines: a line break in it would forge one.
        "sub with a line break": issuer.token(
            sub='mallory\n2026-12-07 INFO uvicorn.access "DELETE /tracking/task/1" 204'
        ),
        "sub with a control character": issuer.token(sub="mallory\x1b[2J"),
        "sub over 255 characters": issuer.token(sub="m" * 256),
        "sub not ASCII": issuer.token(sub="mallöry"),
        "exp a string": issuer.token(exp=str(now + 600)),
        "no aud": issuer.token(aud=None),
        "unknown key id": issuer.token(rsa_key("never-published")),
        "wrong key under a known key id": issuer.token(stranger),
        "payload changed after signing": f"{head}.{tampered_body}.{signature}",
        "signature cut off": f"{head}.{body}.",
        "alg none": unsigned({"alg": "none", "typ": "JWT", "kid": good.kid}, claims),
        "alg None": unsigned({"alg": "None", "kid": good.kid}, claims),
        "no alg": unsigned({"typ": "JWT", "kid": good.kid}, claims, b"x"),
        "HS256 with the public key (PEM)": unsigned(header, claims, pem),
        "HS256 with the public key (JWK)": unsigned(header, claims, json.dumps(good.public_jwk()).encode()),
        "HS256 without key id": unsigned({"alg": "HS256"}, claims, pem),
        "RS256 claimed over the EC key": unsigned({"alg": "RS256", "kid": "ec-1"}, claims, b"x"),
        "ES256 claimed over the RSA key": unsigned({"alg": "ES256", "kid": good.kid}, claims, b"x"),
        "not a JWT": "not-a-jwt",
        "JWE-shaped": "a.b.c.d.e",
        "kid not a string": unsigned({"alg": "RS256", "kid": 7}, claims, b"x"),
    }


FORGED_KINDS = list(forged(Issuer([rsa_key("k")])).keys())


@pytest.fixture(scope="module")
def forgeries(issuer: Issuer) -> dict[str, str]:
    return forged(issuer)


@pytest.mark.parametrize("kind", FORGED_KINDS)
async def test_every_forged_token_is_invalid(forgeries: dict[str, str], verifier: OidcVerifier, kind: str):
    token = forgeries[kind]
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token)
    assert refused.value.status == 401
    header = refused.value.headers()["WWW-Authenticate"]
    assert header.startswith('Bearer realm="tracking", error="invalid_token", error_description="'), header


async def test_a_subject_of_255_printable_characters_names_its_caller(issuer: Issuer, verifier: OidcVerifier):
    subject = "user@example.com " + "x" * 238
    assert (await verifier.verify(issuer.token(sub=subject))).subject == subject


async def test_leeway_admits_a_token_just_expired_only(issuer: Issuer, verifier: OidcVerifier):
    now = int(time.time())
    await verifier.verify(issuer.token(exp=now - 5))  # within TRACKING_OIDC_LEEWAY_S (30 s)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(issuer.token(exp=now - 60))


async def test_an_algorithm_outside_the_allow_list_is_refused_even_with_a_good_signature(issuer: Issuer):
    checker = OidcVerifier(config(issuer, algorithms=("ES256",)))
    try:
        await checker.verify(issuer.token(issuer.keys[1]))
        with pytest.raises(InvalidToken, match="RS256"):
            await checker.verify(issuer.token(issuer.keys[0]))
    finally:
        await checker.keys.aclose()


def test_an_allow_list_with_a_symmetric_algorithm_is_refused():
    for algorithm in ("HS256", "none", "RS1"):
        with pytest.raises(ValueError, match=algorithm):
            OidcConfig(issuer="https://issuer.example", audience="a", algorithms=("RS256", algorithm))


async def test_an_unknown_key_id_refetches_the_keys_once_per_interval(issuer: Issuer):
    """A token naming a key the gateway lacks makes it ask for the keys again (a rotation), but tokens with made-up
    key ids make it ask at most once per TRACKING_OIDC_KEYS_MIN_INTERVAL_S, however many come at once."""
    clock = Clock()
    checker = clocked(issuer, clock, keys_min_interval_s=30)
    try:
        before = issuer.jwks_fetches()
        await checker.verify(issuer.token())
        assert issuer.jwks_fetches() == before + 1
        made_up = [issuer.token(rsa_key(f"made-up-{n}")) for n in range(20)]
        answers = await asyncio.gather(*(checker.verify(token) for token in made_up), return_exceptions=True)
        assert all(isinstance(answer, InvalidToken) for answer in answers), answers
        assert issuer.jwks_fetches() == before + 1, "the interval has not passed since the first fetch"
        clock.advance(29)
        with pytest.raises(InvalidToken, match="made-up-0"):
            await checker.verify(made_up[0])
        assert issuer.jwks_fetches() == before + 1
        clock.advance(1)
        answers = await asyncio.gather(*(checker.verify(token) for token in made_up), return_exceptions=True)
        assert all(isinstance(answer, InvalidToken) for answer in answers), answers
        assert issuer.jwks_fetches() == before + 2, "once the interval has passed: one fetch for them all"
    finally:
        await checker.keys.aclose()


async def test_a_rotated_key_is_fetched_when_a_token_names_it(issuer: Issuer):
    clock = Clock()
    checker = clocked(issuer, clock)
    rotated = rsa_key("rsa-2")
    try:
        await checker.verify(issuer.token())
        fetched = issuer.jwks_fetches()
        issuer.keys.append(rotated)
        clock.advance(60)  # TRACKING_OIDC_KEYS_MIN_INTERVAL_S since the last fetch
        tokens = [issuer.token(rotated, sub="bob") for _ in range(10)]
        verified = await asyncio.gather(*(checker.verify(token) for token in tokens))
        assert {caller.subject for caller in verified} == {"bob"}
        assert issuer.jwks_fetches() == fetched + 1, "the waiters share one fetch"
        await checker.verify(issuer.token(rotated))
        assert issuer.jwks_fetches() == fetched + 1, "a known key id asks nothing"
    finally:
        issuer.keys.remove(rotated)
        await checker.keys.aclose()


async def test_a_key_gone_from_the_jwks_refuses_its_tokens_once_the_keys_are_old(issuer: Issuer):
    clock = Clock()
    retired = rsa_key("retired")
    issuer.keys.append(retired)
    checker = clocked(issuer, clock, keys_max_age_s=600)
    try:
        await checker.verify(issuer.token(retired))
        issuer.keys.remove(retired)
        clock.advance(599)
        await checker.verify(issuer.token(retired))  # the keys held are young enough: not asked again
        clock.advance(1)  # TRACKING_OIDC_KEYS_MAX_AGE_S: fetched again, in the background, at the next token
        await checker.verify(issuer.token(retired))  # the keys held serve while they are fetched

        async def refused() -> bool:
            try:
                await checker.verify(issuer.token(retired))
            except InvalidToken as error:
                return "retired" in error.message
            return False

        await eventually(refused, what="the retired key refused once the keys were fetched again")
    finally:
        await checker.keys.aclose()


async def test_an_issuer_down_at_start_answers_unavailable_then_verifies_once_it_is_up():
    clock = Clock()
    with running_issuer(rsa_key("k1")) as issuer:
        token = issuer.token()
        issuer.stop()
        checker = clocked(issuer, clock, keys_min_interval_s=10)
        try:
            with pytest.raises(IssuerUnavailable) as unavailable:
                await checker.verify(token)
            assert "could not be fetched" in unavailable.value.message
            assert unavailable.value.retry_after_s == 10
            issuer.start()
            clock.advance(4)
            with pytest.raises(IssuerUnavailable) as unavailable:  # within the interval: not asked again
                await checker.verify(token)
            assert unavailable.value.retry_after_s == 6
            assert issuer.requests == []
            clock.advance(6)
            assert (await checker.verify(token)).subject == "alice"
        finally:
            await checker.keys.aclose()


async def test_keys_held_stay_in_use_while_the_issuer_is_down():
    clock = Clock()
    with running_issuer(rsa_key("k1")) as issuer:
        checker = clocked(issuer, clock, keys_max_age_s=60, keys_min_interval_s=10)
        try:
            await checker.verify(issuer.token())
            issuer.stop()
            clock.advance(60)
            assert (await checker.verify(issuer.token(sub="bob"))).subject == "bob"  # old keys, no issuer

            async def failed() -> bool:
                return "ConnectError" in (checker.keys.last_failure or "")

            await eventually(failed, what="the background fetch failed")
            assert (await checker.verify(issuer.token(sub="bob"))).subject == "bob"  # the keys held are kept
            with pytest.raises(IssuerUnavailable, match="unknown"):  # a new key id cannot be judged now
                await checker.verify(issuer.token(rsa_key("k2")))
        finally:
            issuer.start()
            await checker.keys.aclose()


async def test_a_jwks_answering_an_error_keeps_the_keys_held(issuer: Issuer):
    clock = Clock()
    checker = clocked(issuer, clock, keys_max_age_s=60)
    try:
        await checker.verify(issuer.token())
        issuer.jwks_status = 500
        clock.advance(60)
        assert (await checker.verify(issuer.token())).subject == "alice"

        async def failed() -> bool:
            return "HTTP 500" in (checker.keys.last_failure or "")

        await eventually(failed, what="the background fetch failed")
        assert (await checker.verify(issuer.token())).subject == "alice"
    finally:
        issuer.jwks_status = 200
        await checker.keys.aclose()


async def test_a_discovery_document_naming_another_issuer_is_refused(issuer: Issuer):
    checker = OidcVerifier(config(issuer, issuer=issuer.url + "/"))  # not exactly the issuer's identifier
    try:
        with pytest.raises(IssuerUnavailable, match="names issuer"):
            await checker.verify(issuer.token(iss=issuer.url + "/"))
    finally:
        await checker.keys.aclose()


def test_the_bearer_credential_of_a_request():
    assert request_bearer([(b"authorization", b"Bearer abc.def-_~+/=")]) == BearerToken("abc.def-_~+/=")
    assert request_bearer([(b"authorization", b"bearer   abc")]) == BearerToken("abc")
    assert request_bearer([(b"authorization", b"Basic dXNlcjpwYXNz")]) is None
    assert request_bearer([(b"x-auth-token", b"t")]) is None
    for malformed in (b"Bearer", b"Bearer ", b"Bearer a b", b"Bearer a,b", b'Bearer "a"', b"Bearerabc"):
        with pytest.raises(InvalidToken):
            request_bearer([(b"authorization", malformed)])
    with pytest.raises(RepeatedCredential):
        request_bearer([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer a")])
    both = [(b"authorization", b"Bearer a"), (b"x-auth-token", b"t")]
    with pytest.raises(RepeatedCredential, match="not both"):
        Callers(TokenRegistry(["t"]), bearer=OidcVerifier(OidcConfig("https://issuer.example", "a"))).credential(both)
    for malformed in (b"Bearer", b"Bearer a b"):
        beside_a_token = [(b"authorization", malformed), (b"x-auth-token", b"t")]
        with pytest.raises(RepeatedCredential, match="not both"):
            Callers(TokenRegistry(["t"]), bearer=OidcVerifier(OidcConfig("https://issuer.example", "a"))).credential(
                beside_a_token
            )
    assert Callers(TokenRegistry(["t"])).credential(both) == "t", "without an issuer, Authorization is not ours"
    assert "a.b.c" not in repr(BearerToken("a.b.c")), "a token is never shown in a log or a traceback"


def test_challenges_are_rfc_6750_quoted_strings():
    assert challenge() == 'Bearer realm="tracking"'
    assert (
        challenge("invalid_token", 'bad "x"\\\n')
        == 'Bearer realm="tracking", error="invalid_token", error_description="bad ?x???"'
    )
