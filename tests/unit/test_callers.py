"""Callers: the environment's tokens each have a name of their own, the one resolver asks the environment first
and the other sources after, and idempotency keys belong to a caller by its issuer and name."""

from __future__ import annotations

import pytest

from web.auth import Access, Caller, Callers, TokenRegistry, caller_identity


class Known:
    """A source that knows one credential, and counts what it was asked."""

    def __init__(self, credential: str, caller: Caller) -> None:
        self.credential, self.known, self.asked = credential, caller, 0

    async def caller(self, credential: str) -> Caller | None:
        self.asked += 1
        return self.known if credential == self.credential else None


def test_environment_tokens_are_named_by_their_place():
    registry = TokenRegistry(["a1", "a2"], ["r1"])
    assert registry.caller("a1") == Caller("env-api-1", Access.WRITE)
    assert registry.caller(" a2\t") == Caller("env-api-2", Access.WRITE)
    assert registry.caller("r1") == Caller("env-read-1", Access.READ)
    assert registry.caller("a") is None and registry.caller("") is None and registry.caller(None) is None


def test_a_token_in_both_variables_has_full_access():
    assert TokenRegistry(["both"], ["both"]).caller("both") == Caller("env-api-1", Access.WRITE)
    assert TokenRegistry(["x"], ["both", "y"]).access("both") is Access.READ


async def test_the_environment_answers_before_any_other_source():
    named = Known("named-secret", Caller("ci", Access.READ, jobs=("ci-",)))
    callers = Callers(TokenRegistry(["env"]), named)
    assert await callers.resolve("env") == Caller("env-api-1", Access.WRITE)
    assert named.asked == 0
    assert await callers.resolve(" named-secret ") == Caller("ci", Access.READ, jobs=("ci-",))
    assert await callers.resolve("unknown") is None
    assert await callers.resolve("  ") is None and await callers.resolve(None) is None
    assert named.asked == 2  # blank credentials ask no source


async def test_a_request_s_one_credential_is_resolved():
    callers = Callers(TokenRegistry(["env"]))
    assert await callers.of_request([(b"x-auth-token", b"env")]) == Caller("env-api-1", Access.WRITE)
    assert await callers.of_request([(b"accept", b"*/*")]) is None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (Caller("ci", Access.WRITE), Caller("ops", Access.WRITE)),
        (Caller("alice", Access.WRITE), Caller("alice", Access.WRITE, issuer="https://id.example")),
        (Caller("alice", Access.WRITE, issuer="https://a.example"), Caller("alice", Access.WRITE, issuer="https://b")),
    ],
)
def test_callers_of_other_names_or_issuers_own_other_keys(one, other):
    assert caller_identity(one) != caller_identity(other)


def test_a_caller_s_keys_do_not_depend_on_its_access_scope_or_rate():
    renewed = Caller("ci", Access.READ, jobs=("ci-",), rate=5.0)
    assert caller_identity(Caller("ci", Access.WRITE)) == caller_identity(renewed)
    assert len(caller_identity(renewed)) == 64  # stored as before: a SHA-256 in hex, never a secret
