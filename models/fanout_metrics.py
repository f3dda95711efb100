"""The fan-out's gauges on /metrics, read from every fan-out of the process (models.fanout) when scraped: the
open subscriptions by phase from each fan-out's counts (kept as subscriptions move, not walked per scrape), the
events queued, the change streams reading."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from models.metrics import SUBSCRIPTION_QUEUE_DEPTH, SUBSCRIPTION_STREAMS, SUBSCRIPTIONS_OPEN
from models.subscriber import Phase

if TYPE_CHECKING:
    from models.fanout import LiveEvents

LIVE_HUBS: weakref.WeakSet[LiveEvents] = weakref.WeakSet()
"""Every fan-out of this process (tests run several stores in one), for the metrics and the tests' waits."""


def _queued(hub: LiveEvents) -> float:
    return float(sum(len(subscriber.queue) + len(subscriber.pending) for subscriber in hub.subscribers()))


def _in_phase(phase: Phase) -> float:
    return float(sum(hub.phases[phase] for hub in list(LIVE_HUBS)))


SUBSCRIPTIONS_OPEN.labels("catching_up").set_function(lambda: _in_phase(Phase.CATCHING_UP))
SUBSCRIPTIONS_OPEN.labels("live").set_function(lambda: _in_phase(Phase.LIVE))
SUBSCRIPTION_QUEUE_DEPTH.set_function(lambda: sum(_queued(hub) for hub in list(LIVE_HUBS)))
SUBSCRIPTION_STREAMS.labels("shared").set_function(lambda: float(sum(hub.shared_streams for hub in list(LIVE_HUBS))))
SUBSCRIPTION_STREAMS.labels("catch_up").set_function(
    lambda: float(sum(hub.catch_ups.reading for hub in list(LIVE_HUBS)))
)
