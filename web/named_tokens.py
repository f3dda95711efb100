"""Named tokens (models.tokens) as a source of callers for web.auth.Callers."""

from __future__ import annotations

from models.tokens import TokenCache
from web.auth import Access, Caller


class NamedTokenCallers:
    """The callers of the named tokens a gateway knows (models.tokens.TokenCache: no MongoDB round trip)."""

    def __init__(self, cache: TokenCache) -> None:
        self.cache = cache

    async def caller(self, credential: str) -> Caller | None:
        grant = self.cache.grant(credential)
        if grant is None:
            return None
        access = Access.WRITE if grant.write else Access.READ
        return Caller(grant.name, access, jobs=grant.jobs, rate=grant.rate)
