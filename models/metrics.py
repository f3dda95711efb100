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
HISTORY_LAG = Gauge(
    "tracking_history_lag_seconds",
    "How far behind the changes the task history is, in seconds, on the gateway whose writer leads (0 elsewhere).",
)
HISTORY_LEADING = Gauge(
    "tracking_history_writer_leading", "1 on the gateway whose task history writer holds the lease, else 0."
)
