"""Per-caller bounds, shared by both front ends: a request rate (the `limits` library's sliding window counter,
in this process's memory) and how many subscriptions a caller may hold open at once in this process."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from web.auth import Caller, caller_identity

RATE_SETTING = "TRACKING_CALLER_RATE"
SUBSCRIPTIONS_SETTING = "TRACKING_SUBSCRIPTIONS_PER_CALLER"


def rate_item(rate: float) -> RateLimitItem:
    """`rate` requests per second as a window the library counts in: per second from 1/s up (rounded to whole
    requests), per as many seconds as one request takes below 1/s (0.5/s: one per two seconds)."""
    if rate >= 1:
        return RateLimitItemPerSecond(max(1, round(rate)))
    return RateLimitItemPerSecond(1, math.ceil(1 / rate))


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A request past its caller's rate: refused with 429, to be sent again after `retry_after_s`."""

    retry_after_s: int
    rate: float
    caller: str

    @property
    def message(self) -> str:
        return (
            f"too many requests: caller {self.caller!r} may send {self.rate:g} per second (its token's --rate, "
            f"else {RATE_SETTING}); send again in {self.retry_after_s}s"
        )


@dataclass
class CallerLimits:
    """The rate and subscription bounds of every caller this process serves."""

    default_rate: float | None = None
    """Requests per second of a caller whose token names none (TRACKING_CALLER_RATE); None: no bound."""
    subscriptions_per_caller: int | None = None
    """Subscriptions one caller may hold open at once (TRACKING_SUBSCRIPTIONS_PER_CALLER); None: no bound."""
    _limiter: SlidingWindowCounterRateLimiter = field(
        default_factory=lambda: SlidingWindowCounterRateLimiter(MemoryStorage())
    )
    _subscriptions: dict[str, int] = field(default_factory=dict)

    def rate_of(self, caller: Caller) -> float | None:
        return caller.rate if caller.rate is not None else self.default_rate

    async def refusal(self, caller: Caller) -> RateLimited | None:
        """Count one request of `caller`; a RateLimited when it is past the caller's rate (not counted then)."""
        rate = self.rate_of(caller)
        if rate is None:
            return None
        item, key = rate_item(rate), caller_identity(caller)
        if await self._limiter.hit(item, key):
            return None
        stats = await self._limiter.get_window_stats(item, key)
        return RateLimited(max(1, math.ceil(stats.reset_time - time.time())), rate, caller.name)

    def open_subscription(self, caller: Caller) -> str | None:
        """Count one more subscription of `caller`; why it is refused (naming the setting) past the bound."""
        key = caller_identity(caller)
        held = self._subscriptions.get(key, 0)
        if self.subscriptions_per_caller is not None and held >= self.subscriptions_per_caller:
            return (
                f"too many subscriptions for caller {caller.name!r}: at most {self.subscriptions_per_caller} open "
                f"at once on this gateway ({SUBSCRIPTIONS_SETTING}); complete one first"
            )
        self._subscriptions[key] = held + 1
        return None

    def close_subscription(self, caller: Caller) -> None:
        key = caller_identity(caller)
        held = self._subscriptions.get(key, 0) - 1
        if held > 0:
            self._subscriptions[key] = held
        else:
            self._subscriptions.pop(key, None)
