"""Every default the models side shares with the settings, written once: `gateway.settings.Settings` uses
these as its field defaults (each is a TRACKING_* variable), and the store uses them where a caller (a test, a
tool) gives nothing."""

from __future__ import annotations

MONGODB_TIMEOUT_MS = 10_000
"""Deadline of every MongoDB operation a request makes, retries and queueing included; also the
server-selection timeout (TRACKING_MONGODB_TIMEOUT_MS)."""
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
MAX_IDS_PER_REQUEST = 1_000
"""Most ids one request may name (TRACKING_MAX_IDS_PER_REQUEST)."""
MAX_NESTING = 32
"""Deepest nesting of `nexts` in one create (TRACKING_MAX_NESTING)."""
MAX_XML_ATTRIBUTES = 64
"""Most attributes on one element of an XML body (TRACKING_XML_MAX_ATTRIBUTES)."""
MAX_PAGE = 100
"""Largest page a listing hands out (TRACKING_GRAPHQL_MAX_PAGE)."""

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
