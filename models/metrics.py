"""What the graph store reports to /metrics (Prometheus): MongoDB failures and the wait for the link queues.
The gateway's HTTP and GraphQL metrics live beside their front ends; all share the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MONGODB_FAILURES = Counter(
    "tracking_mongodb_failures_total",
    "Store operations that failed because MongoDB was unavailable or did not answer in time.",
    ["kind"],  # "timeout" or "unavailable"
)
LINK_QUEUE_WAIT = Histogram(
    "tracking_link_queue_wait_seconds",
    "Time link additions waited for this process's queues of their tasks' jobs before their transaction.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RETENTION_RUNS = Counter(
    "tracking_retention_runs_total",
    "TRACKING_RETENTION_DAYS purges this process ran, by outcome (a failed one gives its lease up).",
    ["outcome"],  # "ok" or "failed"
)
for _outcome in ("ok", "failed"):
    RETENTION_RUNS.labels(_outcome)  # both series from the start, at 0: an alert can take the rate of failures
HISTORY_LAG = Gauge(
    "tracking_history_lag_seconds",
    "How far behind the changes the task history is, in seconds, on the gateway whose writer leads (0 elsewhere).",
)
HISTORY_LEADING = Gauge(
    "tracking_history_writer_leading", "1 on the gateway whose task history writer holds the lease, else 0."
)
SUBSCRIPTIONS_OPEN = Gauge(
    "tracking_subscriptions_open",
    "Subscriptions registered with this process's fan-out, by phase: catching up (reading from their cursor on a "
    "change stream of their own) or live (fed by the shared change stream).",
    ["phase"],
)
SUBSCRIPTION_QUEUE_DEPTH = Gauge(
    "tracking_subscription_queue_depth",
    "Events waiting in the fan-out for their subscriptions' readers (queued, or kept aside during a catch-up).",
)
SUBSCRIPTION_STREAMS = Gauge(
    "tracking_subscription_change_streams",
    "Change streams open for subscriptions: the shared one and the catch-up reads (bounded by "
    "TRACKING_SUBSCRIPTION_CATCHUPS).",
    ["kind"],
)
SUBSCRIPTION_EVENTS_DELIVERED = Counter(
    "tracking_subscription_events_delivered_total", "Events handed to subscriptions' readers."
)
SUBSCRIPTION_EVENTS_DROPPED = Counter(
    "tracking_subscription_events_dropped_total",
    "Events a subscription did not get because it fell behind by more than TRACKING_SUBSCRIPTION_BUFFER: the one "
    "that did not fit and those kept aside for it (it was ended with SUBSCRIBER_TOO_SLOW and gets them again when "
    "it resumes from its last cursor). Events, not subscriptions: see tracking_subscriptions_ended_total.",
)
SUBSCRIPTIONS_ENDED = Counter(
    "tracking_subscriptions_ended_total",
    "Subscriptions that ended, by why: closed (its client completed it or left), too_slow (SUBSCRIBER_TOO_SLOW), "
    "unavailable (UNAVAILABLE: MongoDB gone longer than TRACKING_SUBSCRIPTION_RESUME_MS, or the gateway stopping), "
    "cursor_expired (CURSOR_EXPIRED).",
    ["reason"],
)
SUBSCRIPTIONS_REFUSED = Counter(
    "tracking_subscriptions_refused_total",
    "Subscriptions refused by a bound, by which: per gateway (TRACKING_SUBSCRIPTIONS_MAX), per connection "
    "(TRACKING_SUBSCRIPTIONS_PER_CONNECTION) or per caller (TRACKING_SUBSCRIPTIONS_PER_CALLER and "
    "TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER).",
    ["bound"],
)
