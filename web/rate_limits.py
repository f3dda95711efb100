"""Per-caller bounds, shared by both front ends: a request rate (the `limits` library's sliding window counter,
in this process's memory), how many subscriptions a caller may hold open at once in this process, and how many
distinct selections they may hold among them (each distinct selection costs an execution per event; those
sharing one cost it once)."""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from models import defaults
from web.auth import Caller, caller_identity

RATE_SETTING = "TRACKING_CALLER_RATE"
SUBSCRIPTIONS_SETTING = "TRACKING_SUBSCRIPTIONS_PER_CALLER"
SELECTIONS_SETTING = "TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER"


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
    selections_per_caller: int = defaults.SUBSCRIPTION_SELECTIONS_PER_CALLER
    """Distinct selections one caller's open subscriptions may hold at once (TRACKING_SUBSCRIPTION_SELECTIONS_PER_
    CALLER): the per-event work of a caller grows with them, not with its subscriptions."""
    _limiter: SlidingWindowCounterRateLimiter = field(
        default_factory=lambda: SlidingWindowCounterRateLimiter(MemoryStorage())
    )
    _subscriptions: dict[str, int] = field(default_factory=dict)
    _selections: dict[str, dict[Hashable, int]] = field(default_factory=dict)
    """caller -> each distinct selection its open subscriptions hold -> how many hold it."""

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

    def open_subscription(self, caller: Caller, selection: Hashable) -> str | None:
        """Count one more subscription of `caller`, of `selection` (what its events' answers depend on: see
        graphql_schema.event_payloads.caller_selection); why it is refused (naming the setting) past either bound,
        nothing counted then."""
        key = caller_identity(caller)
        held = self._subscriptions.get(key, 0)
        if self.subscriptions_per_caller is not None and held >= self.subscriptions_per_caller:
            return (
                f"too many subscriptions for caller {caller.name!r}: at most {self.subscriptions_per_caller} open "
                f"at once on this gateway ({SUBSCRIPTIONS_SETTING}); complete one first"
            )
        selections = self._selections.setdefault(key, {})
        if selection not in selections and len(selections) >= self.selections_per_caller:
            return (
                f"too many distinct subscription selections for caller {caller.name!r}: at most "
                f"{self.selections_per_caller} at once on this gateway ({SELECTIONS_SETTING}); subscriptions with "
                "the same query text and payload variables share one (whatever their jobId and after): reuse a "
                "query you already subscribed with, or complete those of another first"
            )
        selections[selection] = selections.get(selection, 0) + 1
        self._subscriptions[key] = held + 1
        return None

    def close_subscription(self, caller: Caller, selection: Hashable) -> None:
        key = caller_identity(caller)
        held = self._subscriptions.get(key, 0) - 1
        if held > 0:
            self._subscriptions[key] = held
        else:
            self._subscriptions.pop(key, None)
        selections = self._selections.get(key, {})
        left = selections.get(selection, 0) - 1
        if left > 0:
            selections[selection] = left
        else:
            selections.pop(selection, None)
            if not selections:
                self._selections.pop(key, None)
