"""The defaults of the store's parameters, written once: the store uses them where a caller (a test, a tool)
gives nothing, and `gateway.settings.Settings` uses them as its field defaults (each is a TRACKING_* variable).
Defaults of what only a request has (its shape's limits) are in web.limits; those only the gateway reads, in
gateway.settings."""

from __future__ import annotations

MONGODB_TIMEOUT_MS = 10_000
"""Deadline of every MongoDB operation a request makes, retries and queueing included; also the
server-selection timeout (TRACKING_MONGODB_TIMEOUT_MS)."""
COMMIT_OUTCOME_WAIT_MS = 10_000
"""How long, once a transaction's commit is sent, the gateway keeps asking MongoDB whether it committed before it
answers that the outcome is unknown; apart from TRACKING_MONGODB_TIMEOUT_MS, which bounds the work before the
commit (TRACKING_COMMIT_OUTCOME_WAIT_MS)."""
IDEMPOTENCY_HOURS = 24
"""How long a create's idempotency key is remembered (TRACKING_IDEMPOTENCY_HOURS)."""
VALIDATION_ACTION = "error"
"""What MongoDB does with a write off the stored layout: "error" refuses it, "warn" logs it
(TRACKING_VALIDATION_ACTION)."""
HISTORY_DAYS = 30
"""Days a task's recorded changes are kept (TRACKING_HISTORY_DAYS)."""
SUBSCRIPTION_RESUME_MS = 30_000
"""How long a change stream keeps trying to resume after MongoDB went away (TRACKING_SUBSCRIPTION_RESUME_MS)."""
DONE_STATUSES = ("DONE", "COMPLETED", "SUCCEEDED", "SUCCESS", "FINISHED", "SKIPPED")
"""Statuses that mean a task finished and blocks nothing (TRACKING_DONE_STATUSES), compared case-sensitively."""

MAX_TASKS_PER_CREATE = 10_000
"""Most tasks one create may hold, nested ones included (TRACKING_MAX_TASKS_PER_CREATE)."""
MAX_FRAGMENT_DEPTH = 32
"""Longest chain of GraphQL fragment spreads (A spreads B spreads C: 3) a document may hold
(TRACKING_GRAPHQL_MAX_FRAGMENT_DEPTH)."""
MAX_PAGE = 100
"""Largest page a listing hands out (TRACKING_GRAPHQL_MAX_PAGE)."""
MAX_HISTORY = 50
"""Most recorded changes one GraphQL history field returns per task, its newest (TRACKING_GRAPHQL_MAX_HISTORY):
also what it returns when `last` is not given."""

SUBSCRIPTIONS_MAX = 10_000
"""Most subscriptions one gateway process serves at once (TRACKING_SUBSCRIPTIONS_MAX)."""
SUBSCRIPTIONS_PER_CONNECTION = 100
"""Most subscriptions one WebSocket connection may hold open (TRACKING_SUBSCRIPTIONS_PER_CONNECTION)."""
SUBSCRIPTION_BUFFER = 10_000
"""Most events waiting for one subscription's reader before it is ended as too slow (TRACKING_SUBSCRIPTION_BUFFER)."""
SUBSCRIPTION_CATCHUPS = 4
"""Most catch-up reads (a subscription resuming from its cursor) running at once, each on a connection of the
subscriptions' own pool (TRACKING_SUBSCRIPTION_CATCHUPS)."""
SERVICE_NAME = "tracking-gateway"
"""The service name traces carry unless OTEL_SERVICE_NAME says otherwise."""
OTLP_PROTOCOL = "http/protobuf"
"""The one OTLP protocol the gateway exports traces with (OTEL_EXPORTER_OTLP_PROTOCOL)."""
OTLP_TIMEOUT_MS = 10_000
"""Longest one export of spans may take, retries included (OTEL_EXPORTER_OTLP_TIMEOUT, milliseconds)."""
TRACES_SAMPLER = "parentbased_always_on"
"""OpenTelemetry's default sampler (OTEL_TRACES_SAMPLER): a caller's sampling decision is followed."""
BSP_SCHEDULE_DELAY_MS = 5_000
"""OpenTelemetry's defaults for the batch span processor (OTEL_BSP_*): the delay between two exports, the
longest an export may take, the spans queued at most (more are dropped, and counted) and per export."""
BSP_EXPORT_TIMEOUT_MS = 30_000
BSP_MAX_QUEUE_SIZE = 2_048
BSP_MAX_EXPORT_BATCH_SIZE = 512

TOKENS_RELOAD_MS = 2_000
"""How often a gateway reloads the named tokens (TRACKING_TOKENS_RELOAD_MS): a token created or revoked is
honoured by every gateway within this time."""
TOKEN_LAST_USED_S = 60
"""How often a gateway writes the named tokens' `last_used` (TRACKING_TOKEN_LAST_USED_S)."""
MAX_TOKEN_RATE = 100_000.0
"""The largest `--rate` a token may have, in requests per second."""
