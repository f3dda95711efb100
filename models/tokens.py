"""Named API tokens, kept in MongoDB as the SHA-256 of their secret (never the secret): created, listed and
revoked from the command line while gateways run, and known to every gateway through `TokenCache`.

A gateway never asks MongoDB about a presented token: it keeps every token's hash in memory and reloads them all
every TRACKING_TOKENS_RELOAD_MS, so a token created or revoked is honoured within that time everywhere, and a
flood of unknown tokens costs MongoDB nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.collation import Collation, CollationStrength
from pymongo.errors import OperationFailure

from models import defaults
from models.deadline import is_duplicate_key
from models.documents import NamedToken
from models.errors import InvalidOperation
from models.stored_task import Collection, Database

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
"""A token's name: it shows in logs, metrics and the task history, so it is short and plain."""
RESERVED_PREFIX = "env-"
"""The environment's tokens are named env-api-N and env-read-N (web.auth): no named token may look like one."""
MAX_PREFIXES = 32
MAX_PREFIX_LENGTH = 256
SECRET_BYTES = 32
"""256 random bits: the SHA-256 of such a secret reveals nothing useful, and no salt is needed."""


_ANY_CASE = Collation("en", strength=CollationStrength.SECONDARY)
"""Strings equal but for case (and nothing else: accents still differ)."""


def secret_hash(secret: str) -> str:
    """How a secret is stored and looked up: the SHA-256 of it, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a named token allows, as a gateway keeps it in memory."""

    name: str
    hash: str
    write: bool
    jobs: tuple[str, ...] | None
    rate: float | None
    expires: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


def checked_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidOperation(
            f"token name {name!r}: 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    if name.lower().startswith(RESERVED_PREFIX):  # `ENV-api-1` would pass for the environment's token too
        raise InvalidOperation(f"token name {name!r}: names starting with {RESERVED_PREFIX!r} are the environment's")
    return name


def checked_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...] | None:
    """Job-id prefixes as given (None when none is: every job); InvalidOperation naming a wrong one."""
    if not prefixes:
        return None
    if len(prefixes) > MAX_PREFIXES:
        raise InvalidOperation(f"--jobs: at most {MAX_PREFIXES} prefixes per token, not {len(prefixes)}")
    for prefix in prefixes:
        if not prefix or len(prefix) > MAX_PREFIX_LENGTH or not prefix.isprintable():
            raise InvalidOperation(
                f"--jobs {prefix!r}: a prefix is 1 to {MAX_PREFIX_LENGTH} printable characters (an empty one "
                "would be every job: leave --jobs out for that)"
            )
    return tuple(dict.fromkeys(prefixes))


def _grant(doc: Mapping[str, Any]) -> TokenGrant | None:
    """The grant of a stored token; None (logged) for a document no gateway could honour."""
    try:
        jobs = doc.get("jobs")
        expires = doc.get("expires")
        rate = doc.get("rate")
        return TokenGrant(
            name=str(doc["_id"]),
            hash=str(doc["hash"]),
            write=doc["access"] == "write",
            jobs=tuple(str(prefix) for prefix in jobs) if jobs is not None else None,
            rate=float(rate) if rate is not None else None,
            expires=expires.replace(tzinfo=UTC) if isinstance(expires, datetime) else None,
        )
    except (KeyError, TypeError, ValueError):
        log.warning("token %r is malformed in the tokens collection: refused until it is created again", doc.get("_id"))
        return None


class NamedTokens:
    """The `tokens` collection: create, list, revoke (the command line), load and mark used (the gateways)."""

    def __init__(self, database: Database) -> None:
        self._tokens: Collection = database.get_collection(NamedToken.Settings.name)

    async def prepare(self) -> None:
        await self._tokens.create_indexes(NamedToken.Settings.indexes)

    async def create(
        self,
        name: str,
        *,
        write: bool,
        jobs: tuple[str, ...] = (),
        expires_in: timedelta | None = None,
        rate: float | None = None,
    ) -> str:
        """A new token named `name`; returns its secret, which is stored nowhere (only its hash is)."""
        checked_name(name)
        prefixes = checked_prefixes(jobs)
        if rate is not None and not 0 < rate <= defaults.MAX_TOKEN_RATE:
            raise InvalidOperation(f"--rate: between 0 and {defaults.MAX_TOKEN_RATE:g} requests per second, not {rate}")
        await self.prepare()
        await self._refuse_a_name_taken_in_any_case(name)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        now = datetime.now(UTC)
        doc = {
            "_id": name,
            "hash": secret_hash(secret),
            "access": "write" if write else "read",
            "jobs": list(prefixes) if prefixes is not None else None,
            "rate": rate,
            "created": now,
            "expires": now + expires_in if expires_in is not None else None,
            "last_used": None,
        }
        try:
            await self._tokens.insert_one(doc)
        except OperationFailure as error:
            if is_duplicate_key(error):
                raise InvalidOperation(f"a token named {name!r} exists already: revoke it first") from None
            raise
        return secret

    async def _refuse_a_name_taken_in_any_case(self, name: str) -> None:
        """Names tell callers apart in logs, metrics and the history: `scopea` beside `scopeA` would pass for it.
        The few tokens are read without the `_id` index (a case-insensitive collation); two creates racing with
        names that differ by case are not told apart (the index refuses only an exact repeat)."""
        taken = await self._tokens.find_one({"_id": name}, {"_id": 1}, collation=_ANY_CASE)
        if taken is not None:
            ignoring_case = "" if taken["_id"] == name else " (names are compared ignoring case)"
            raise InvalidOperation(f"a token named {taken['_id']!r} exists already{ignoring_case}: revoke it first")

    async def listed(self) -> list[dict[str, Any]]:
        """Every token as stored, by name, without its hash."""
        return await self._tokens.find({}, {"hash": 0}).sort("_id", ASCENDING).to_list(None)

    async def revoke(self, name: str) -> None:
        if (await self._tokens.delete_one({"_id": name})).deleted_count == 0:
            raise InvalidOperation(f"no token named {name!r}")

    async def grants(self) -> dict[str, TokenGrant]:
        """Every token a gateway could honour, by the hash of its secret."""
        found = {}
        async for doc in self._tokens.find({}, {"last_used": 0}):
            grant = _grant(doc)
            if grant is not None:
                found[grant.hash] = grant
        return found

    async def mark_used(self, names: list[str], when: datetime) -> None:
        """`last_used` of these tokens: `when`, unless a later time is there already (another gateway's)."""
        await self._tokens.update_many({"_id": {"$in": names}}, {"$max": {"last_used": when}})


class TokenCache:
    """Every named token's grant, in memory, reloaded every `reload_s`; which tokens were used since `last_used`
    was last written, written every `last_used_s`."""

    def __init__(self, tokens: NamedTokens, reload_s: float, last_used_s: float) -> None:
        self._tokens = tokens
        self.reload_s = reload_s
        self.last_used_s = last_used_s
        self._grants: dict[str, TokenGrant] = {}
        self._used: set[str] = set()
        self.loaded = asyncio.Event()

    def grant(self, secret: str, now: datetime | None = None) -> TokenGrant | None:
        """The grant of the token whose secret is presented; None for an unknown or expired one. Looked up by the
        secret's hash: what the lookup's timing could tell is about a hash, never about a secret."""
        digest = secret_hash(secret)
        grant = self._grants.get(digest)
        if grant is None or not hmac.compare_digest(grant.hash, digest):
            return None
        if grant.expired(now or datetime.now(UTC)):
            return None
        self._used.add(grant.name)
        return grant

    async def reload(self) -> None:
        self._grants = await self._tokens.grants()
        self.loaded.set()

    async def write_last_used(self) -> None:
        used, self._used = sorted(self._used), set()
        if used:
            await self._tokens.mark_used(used, datetime.now(UTC))

    async def run(self) -> None:
        """Reload and write `last_used` until cancelled; a failure (MongoDB away) keeps the grants known so far
        and is tried again at the next turn."""
        last_written = asyncio.get_running_loop().time()
        failing = False
        while True:
            try:
                await self.reload()
                now = asyncio.get_running_loop().time()
                if now - last_written >= self.last_used_s:
                    last_written = now
                    await self.write_last_used()
                if failing:
                    log.info("named tokens reloaded again")
                failing = False
            except Exception as error:  # any failure (MongoDB away): the next turn tries again
                if not failing:  # once per outage, not every turn
                    log.warning("named tokens not reloaded (%s): keeping the %d known", error, len(self._grants))
                failing = True
            await asyncio.sleep(self.reload_s)
