"""Named tokens (models.tokens) as a source of callers for web.auth.Callers."""

from __future__ import annotations

import asyncio
import math

from models.tokens import TokenCache
from web.auth import Access, Caller
from web.bearer import CannotJudgeNow


class NamedTokenCallers:
    """The callers of the named tokens a gateway knows (models.tokens.TokenCache: no MongoDB round trip once the
    tokens are loaded). Until the first load has happened (MongoDB slow or away when the gateway started), a
    request presenting a token not from the environment waits for it, at most `load_wait_s`, then is answered
    503: whether its token is known cannot be told yet."""

    def __init__(self, cache: TokenCache, load_wait_s: float) -> None:
        self.cache = cache
        self.load_wait_s = load_wait_s

    async def caller(self, credential: str) -> Caller | None:
        if not self.cache.loaded.is_set():
            try:
                await asyncio.wait_for(self.cache.loaded.wait(), self.load_wait_s)
            except TimeoutError:
                raise CannotJudgeNow(
                    "the named tokens could not be loaded from MongoDB yet: try again later",
                    max(1, math.ceil(self.cache.reload_s)),
                ) from None
        grant = self.cache.grant(credential)
        if grant is None:
            return None
        access = Access.WRITE if grant.write else Access.READ
        return Caller(grant.name, access, jobs=grant.jobs, rate=grant.rate)
