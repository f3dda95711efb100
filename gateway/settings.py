"""Configuration, read from TRACKING_* environment variables."""

from __future__ import annotations

import tempfile
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models import defaults
from models.fanout import LiveLimits
from web import oidc
from web.auth import token_problem
from web.limits import MAX_IDS_PER_REQUEST, MAX_NESTING, MAX_XML_ATTRIBUTES, RequestLimits
from web.oidc_keys import url_problem

ENV_PREFIX = "TRACKING_"
ASCII_SPACE = " \t\r\n"
"""What separates the items of a list setting besides its commas; other spaces (U+00A0, say) are characters of
an item, so that a token holding one is refused rather than silently cut."""
DAY_MS = 86_400_000
"""The longest duration in milliseconds a setting may give (a day): the event loop and the driver take no
more, and nothing the gateway waits for should take longer."""
MAX_COUNT = 2**31 - 1
"""The largest count a setting may give (bytes, tasks, ids, GraphQL bounds): past it a bound is no bound, and
MongoDB takes a `$limit` built from it (an int64) no more."""
MAX_RETENTION_DAYS = 36_500
"""A century: a longer retention keeps everything, as no retention does (and the cutoff date must exist)."""
MAX_HISTORY_DAYS = 24_855
"""MongoDB's TTL index takes `expireAfterSeconds` up to 2^31 - 1: 24,855 days and a little."""
MAX_PURGE_BATCH = 100_000
"""Most tasks one purge transaction may remove (TRACKING_PURGE_BATCH, `purge --batch`)."""
MAX_RETENTION_INTERVAL_S = 366 * 86_400
"""A year and a day between background purges at most (a longer interval never purges)."""
MAX_SPAN_QUEUE = 100_000
"""Most spans OTEL_BSP_MAX_QUEUE_SIZE (and so OTEL_BSP_MAX_EXPORT_BATCH_SIZE) may hold waiting for export: at a
few kilobytes each, a larger queue is memory the gateway does not have, and a larger batch a request body no
collector takes (4 MB by default in the OpenTelemetry Collector)."""


def unwritable_directory(path: Path) -> str | None:
    """Why files cannot be written in directory `path` (created if missing), or None when they can: tried with a
    file of its own, as permissions alone do not say (a read-only mount, a file in the way, root)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as error:
        return f"cannot be written ({error.strerror or error})"
    return None


class SettingsError(Exception):
    """A configuration value is invalid; the message names the environment variable."""


class Settings(BaseSettings):
    # Every float is finite: pydantic reads "inf", "nan" and "-inf" as floats, and no setting means anything then.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, allow_inf_nan=False)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    mongodb_uri: str | None = None
    mongodb_db: str = Field(default="tracking", min_length=1, max_length=63, pattern=r"^[^/\\. \"$]+$")
    data_dir: Path = Path("./var")
    api_tokens: Annotated[tuple[str, ...], NoDecode] = ()
    read_tokens: Annotated[tuple[str, ...], NoDecode] = ()
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    log_format: str = Field(default="text", pattern=r"^(text|json)$")
    embedded_mongodb_port: int | None = Field(default=None, ge=1, le=65535)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1, le=MAX_COUNT)
    # A subscription holds its start message's document and variables for its life (a dashboard's is a few KB).
    websocket_max_message_bytes: int = Field(default=1024 * 1024, ge=1024, le=MAX_COUNT)
    # Bounded work per request: each limit is named (with its variable) in the error that refuses a request.
    max_tasks_per_create: int = Field(default=defaults.MAX_TASKS_PER_CREATE, ge=1, le=MAX_COUNT)
    max_ids_per_request: int = Field(default=MAX_IDS_PER_REQUEST, ge=1, le=MAX_COUNT)
    max_nesting: int = Field(default=MAX_NESTING, ge=1, le=100)
    xml_max_attributes: int = Field(default=MAX_XML_ATTRIBUTES, ge=1, le=10_000)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=MAX_COUNT)
    header_timeout_ms: int = Field(default=10_000, ge=100, le=DAY_MS)
    body_timeout_ms: int = Field(default=60_000, ge=100, le=DAY_MS)
    # Bounded time per request when MongoDB is slow or gone.
    mongodb_timeout_ms: int = Field(default=defaults.MONGODB_TIMEOUT_MS, ge=100, le=DAY_MS)
    # Once a transaction's commit is sent: how long its outcome is asked for before "outcome unknown" (504).
    commit_outcome_wait_ms: int = Field(default=defaults.COMMIT_OUTCOME_WAIT_MS, ge=100, le=DAY_MS)
    # How long a create's Idempotency-Key is remembered.
    idempotency_hours: int = Field(default=defaults.IDEMPOTENCY_HOURS, ge=1, le=8760)
    # Named tokens (models.tokens): how often every gateway reloads them, and writes when they were last used.
    tokens_reload_ms: int = Field(default=defaults.TOKENS_RELOAD_MS, ge=100, le=DAY_MS)
    token_last_used_s: int = Field(default=defaults.TOKEN_LAST_USED_S, ge=1, le=DAY_MS // 1000)
    # Per-caller bounds (web.rate_limits): the rate of callers whose token names none, and open subscriptions.
    caller_rate: float | None = Field(default=None, gt=0, le=defaults.MAX_TOKEN_RATE)
    subscriptions_per_caller: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    subscription_selections_per_caller: int = Field(
        default=defaults.SUBSCRIPTION_SELECTIONS_PER_CALLER, ge=1, le=MAX_COUNT
    )
    validation_action: str = Field(default=defaults.VALIDATION_ACTION, pattern=r"^(error|warn)$")
    embedded_restarts: int = Field(default=3, ge=0, le=MAX_COUNT)
    log_level: str = Field(default="info", pattern=r"^(?i:critical|error|warning|info|debug)$")

    # GraphQL bounds on query depth, aliases, tokens, traversal size and page size: a request past one gets a
    # GraphQL error naming the bound.
    graphql_max_depth: int = Field(default=12, ge=1, le=MAX_COUNT)
    graphql_max_aliases: int = Field(default=30, ge=1, le=MAX_COUNT)
    graphql_max_tokens: int = Field(default=5000, ge=1, le=MAX_COUNT)
    graphql_max_traversal: int = Field(default=20000, ge=1, le=MAX_COUNT)
    graphql_max_page: int = Field(default=defaults.MAX_PAGE, ge=1, le=MAX_COUNT)
    # A task's history has no bound of its own: each history field returns at most this many changes per task.
    graphql_max_history: int = Field(default=defaults.MAX_HISTORY, ge=1, le=MAX_COUNT)
    # Fragment spreads chain definitions, which validation follows recursively: bounded before it runs.
    graphql_max_fragment_depth: int = Field(default=defaults.MAX_FRAGMENT_DEPTH, ge=1, le=100)
    # The budget of an operation's estimated cost (graphql_schema.cost); unset: a multiple of graphql_max_traversal.
    graphql_max_cost: int | None = Field(default=None, ge=1, le=2**62)
    # The budget of a subscription's estimated cost per event (its selection runs on every event).
    graphql_max_event_cost: int = Field(default=defaults.MAX_EVENT_COST, ge=1, le=2**62)
    # Dashboard queries answered from one projected read instead of field by field (graphql_schema.compiled).
    graphql_compiled: bool = True
    # What "done" means for job progress and blockedBy (case-sensitive).
    done_statuses: Annotated[tuple[str, ...], NoDecode] = defaults.DONE_STATUSES
    # Live updates and their history.
    history_days: int = Field(default=defaults.HISTORY_DAYS, ge=1, le=MAX_HISTORY_DAYS)
    subscription_resume_ms: int = Field(default=defaults.SUBSCRIPTION_RESUME_MS, ge=1000, le=DAY_MS)
    subscriptions_max: int = Field(default=defaults.SUBSCRIPTIONS_MAX, ge=1, le=MAX_COUNT)
    subscriptions_per_connection: int = Field(default=defaults.SUBSCRIPTIONS_PER_CONNECTION, ge=1, le=MAX_COUNT)
    subscription_buffer: int = Field(default=defaults.SUBSCRIPTION_BUFFER, ge=1, le=MAX_COUNT)
    subscription_catchups: int = Field(default=defaults.SUBSCRIPTION_CATCHUPS, ge=1, le=100)
    # Data lifecycle (models.lifecycle, models.retention): unset retention_days keeps every task forever.
    retention_days: float | None = Field(default=None, gt=0, le=MAX_RETENTION_DAYS)
    retention_interval_s: float = Field(default=3600, ge=1, le=MAX_RETENTION_INTERVAL_S)
    retention_archive_dir: Path | None = None
    purge_batch: int = Field(default=1000, ge=1, le=MAX_PURGE_BATCH)

    # OpenID Connect (web.oidc): with an issuer and an audience, `Authorization: Bearer <JWT>` from that issuer is a
    # credential; with a client id too, the pages offer "Sign in" (authorization code with PKCE, a public client).
    oidc_issuer: str | None = None
    oidc_audience: str | None = Field(default=None, min_length=1)
    oidc_scope_claim: str = Field(default="scope", min_length=1)
    oidc_jobs_claim: str = Field(default="tracking_jobs", min_length=1)
    oidc_algorithms: Annotated[tuple[str, ...], NoDecode] = oidc.DEFAULT_ALGORITHMS
    oidc_leeway_s: int = Field(default=oidc.DEFAULT_LEEWAY_S, ge=0, le=300)
    oidc_keys_max_age_s: int = Field(default=oidc.DEFAULT_KEYS_MAX_AGE_S, ge=60, le=86_400)
    oidc_keys_min_interval_s: int = Field(default=oidc.DEFAULT_KEYS_MIN_INTERVAL_S, ge=1, le=3600)
    oidc_http_timeout_ms: int = Field(default=oidc.DEFAULT_HTTP_TIMEOUT_MS, ge=100, le=60_000)
    oidc_client_id: str | None = Field(default=None, min_length=1)
    oidc_client_scopes: str = Field(default="openid tracking:read tracking:write", min_length=1)
    oidc_page_token: str = Field(default="access_token", pattern=r"^(access_token|id_token)$")

    # Traces (gateway.tracing): OpenTelemetry's own variables, without the TRACKING_ prefix (their alias). No
    # endpoint, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none: no tracing at all.
    otel_exporter_otlp_endpoint: str | None = Field(default=None, validation_alias="otel_exporter_otlp_endpoint")
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias="otel_exporter_otlp_traces_endpoint"
    )
    otel_exporter_otlp_protocol: str = Field(
        default=defaults.OTLP_PROTOCOL, pattern=r"^http/protobuf$", validation_alias="otel_exporter_otlp_protocol"
    )
    otel_exporter_otlp_traces_protocol: str | None = Field(
        default=None, pattern=r"^http/protobuf$", validation_alias="otel_exporter_otlp_traces_protocol"
    )
    otel_exporter_otlp_timeout: int = Field(
        default=defaults.OTLP_TIMEOUT_MS, ge=1, le=DAY_MS, validation_alias="otel_exporter_otlp_timeout"
    )
    otel_exporter_otlp_traces_timeout: int | None = Field(
        default=None, ge=1, le=DAY_MS, validation_alias="otel_exporter_otlp_traces_timeout"
    )
    otel_service_name: str | None = Field(default=None, min_length=1, validation_alias="otel_service_name")
    # Read by OpenTelemetry's API itself when the app is imported (a name it cannot find raises there): checked
    # here first, so that a misspelt one is an error naming the variable.
    otel_propagators: str | None = Field(default=None, validation_alias="otel_propagators")
    otel_traces_sampler: str = Field(
        default=defaults.TRACES_SAMPLER,
        pattern=r"^(always_on|always_off|traceidratio|parentbased_always_on|parentbased_always_off"
        r"|parentbased_traceidratio)$",
        validation_alias="otel_traces_sampler",
    )
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0, le=1, validation_alias="otel_traces_sampler_arg")
    otel_traces_exporter: str = Field(default="otlp", pattern=r"^(otlp|none)$", validation_alias="otel_traces_exporter")
    otel_sdk_disabled: bool = Field(default=False, validation_alias="otel_sdk_disabled")
    otel_bsp_schedule_delay: int = Field(
        default=defaults.BSP_SCHEDULE_DELAY_MS, ge=1, le=DAY_MS, validation_alias="otel_bsp_schedule_delay"
    )
    otel_bsp_export_timeout: int = Field(
        default=defaults.BSP_EXPORT_TIMEOUT_MS, ge=1, le=DAY_MS, validation_alias="otel_bsp_export_timeout"
    )
    otel_bsp_max_queue_size: int = Field(
        default=defaults.BSP_MAX_QUEUE_SIZE, ge=1, le=MAX_SPAN_QUEUE, validation_alias="otel_bsp_max_queue_size"
    )
    otel_bsp_max_export_batch_size: int = Field(
        default=defaults.BSP_MAX_EXPORT_BATCH_SIZE,
        ge=1,
        le=MAX_SPAN_QUEUE,
        validation_alias="otel_bsp_max_export_batch_size",
    )

    @field_validator("mongodb_uri", mode="before")
    @classmethod
    def _blank_uri_means_embedded(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("retention_days", "retention_archive_dir", mode="before")
    @classmethod
    def _blank_means_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("mongodb_uri")
    @classmethod
    def _uri_has_mongodb_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("oidc_issuer", "oidc_audience", "oidc_client_id", mode="before")
    @classmethod
    def _blank_oidc_means_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_is_https(cls, value: str | None) -> str | None:
        problem = url_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _algorithms_are_asymmetric(cls, algorithms: tuple[str, ...]) -> tuple[str, ...]:
        refused = [algorithm for algorithm in algorithms if algorithm not in oidc.ASYMMETRIC_ALGORITHMS]
        if refused or not algorithms:
            raise ValueError(
                f"{', '.join(refused) or 'nothing'} is not an asymmetric signature algorithm; list some of "
                + ", ".join(oidc.ASYMMETRIC_ALGORITHMS)
            )
        return algorithms

    @field_validator("api_tokens", "read_tokens", "cors_origins", "done_statuses", "oidc_algorithms", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip(ASCII_SPACE) for item in value.split(",") if item.strip(ASCII_SPACE))
        return value

    @field_validator("api_tokens", "read_tokens")
    @classmethod
    def _tokens_are_visible_ascii(cls, tokens: tuple[str, ...]) -> tuple[str, ...]:
        for number, token in enumerate(tokens, start=1):
            problem = token_problem(token)
            if problem is not None:
                raise ValueError(f"token {number}: {problem}")
        return tokens

    @model_validator(mode="before")
    @classmethod
    def _blank_otel_variable_means_unset(cls, data: object) -> object:
        """OpenTelemetry's variables: an empty value is the variable unset (the specification's rule), so a
        deployment template that writes `OTEL_TRACES_SAMPLER=` starts as if it wrote nothing."""
        if not isinstance(data, dict):
            return data
        return {
            key: value
            for key, value in data.items()
            if not (isinstance(key, str) and key.startswith("otel_") and isinstance(value, str) and not value.strip())
        }

    @field_validator(
        "otel_traces_sampler",
        "otel_traces_exporter",
        "otel_exporter_otlp_protocol",
        "otel_exporter_otlp_traces_protocol",
        mode="before",
    )
    @classmethod
    def _otel_enumeration_in_any_case(cls, value: object) -> object:
        """OpenTelemetry's enumerated values are read in any case (`ALWAYS_ON`), as the specification asks."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_propagators")
    @classmethod
    def _propagators_installed(cls, value: str | None) -> str | None:
        """Each name an installed propagator's (as OpenTelemetry's API looks them up), or `none` among them."""
        if value is None:
            return None
        names = [name.strip() for name in value.split(",")]
        if any(name.lower() == "none" for name in names):
            return value
        installed = {entry.name for entry in entry_points(group="opentelemetry_propagator")}
        unknown = [name for name in names if name not in installed]
        if unknown:
            raise ValueError(
                f"names no installed propagator: {', '.join(map(repr, unknown))} "
                f"(installed: {', '.join(sorted(installed))}; or none)"
            )
        return value

    @field_validator("otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        """An http(s) URL with a host, a valid port, and no query or fragment (the path /v1/traces is added to
        OTEL_EXPORTER_OTLP_ENDPOINT): one that cannot be sent to fails here, naming the variable, not in every
        export or in a traceback at start."""
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as error:
            raise ValueError(f"is not a URL: {error}") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL (OTLP over HTTP/protobuf)")
        if not parts.hostname or " " in parts.netloc:
            raise ValueError("names no host")
        if parts.query or parts.fragment or port == 0:
            raise ValueError("must have no query, no fragment and a port from 1 to 65535")
        return value

    @model_validator(mode="after")
    def _oidc_is_whole(self) -> Settings:
        if (self.oidc_issuer is None) != (self.oidc_audience is None):
            raise ValueError("TRACKING_OIDC_ISSUER and TRACKING_OIDC_AUDIENCE go together: set both or neither")
        if self.oidc_client_id is not None and self.oidc_issuer is None:
            raise ValueError("TRACKING_OIDC_CLIENT_ID needs TRACKING_OIDC_ISSUER and TRACKING_OIDC_AUDIENCE")
        return self

    @property
    def oidc(self) -> oidc.OidcConfig | None:
        """How bearer tokens are verified; None without an issuer (no bearer token is then a credential)."""
        if self.oidc_issuer is None or self.oidc_audience is None:
            return None
        return oidc.OidcConfig(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            scope_claim=self.oidc_scope_claim,
            jobs_claim=self.oidc_jobs_claim,
            algorithms=self.oidc_algorithms,
            leeway_s=self.oidc_leeway_s,
            keys_max_age_s=self.oidc_keys_max_age_s,
            keys_min_interval_s=self.oidc_keys_min_interval_s,
            http_timeout_ms=self.oidc_http_timeout_ms,
            client_id=self.oidc_client_id,
        )

    @model_validator(mode="after")
    def _archive_dir_is_writable(self) -> Settings:
        """The background purge writes its archives there: a directory it cannot write is refused at start, not
        found out at the first purge (every one would fail). Created if missing, as the purge would."""
        if self.retention_days is not None and self.retention_archive_dir is not None:
            problem = unwritable_directory(self.retention_archive_dir)
            if problem is not None:
                raise ValueError(f"TRACKING_RETENTION_ARCHIVE_DIR {self.retention_archive_dir}: {problem}")
        return self

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> Settings:
        if self.otel_bsp_max_export_batch_size > self.otel_bsp_max_queue_size:
            raise ValueError(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not exceed OTEL_BSP_MAX_QUEUE_SIZE "
                f"({self.otel_bsp_max_export_batch_size} > {self.otel_bsp_max_queue_size})"
            )
        return self

    @property
    def uses_embedded_mongodb(self) -> bool:
        return self.mongodb_uri is None

    @property
    def live(self) -> LiveLimits:
        return LiveLimits(
            max_subscriptions=self.subscriptions_max,
            buffer=self.subscription_buffer,
            catch_ups=self.subscription_catchups,
        )

    @property
    def limits(self) -> RequestLimits:
        """The bounds on a request's shape, which include the store's own (tasks per create)."""
        return RequestLimits(
            max_tasks_per_create=self.max_tasks_per_create,
            max_ids_per_request=self.max_ids_per_request,
            max_nesting=self.max_nesting,
            max_xml_attributes=self.xml_max_attributes,
        )


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each offending environment variable, e.g. 'TRACKING_PORT: Input should be ...'."""
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        prefix = "" if field.startswith("otel_") else ENV_PREFIX  # OpenTelemetry's variables keep their own names
        name = f"{prefix}{field.upper()}: " if field else ""
        parts.append(f"{name}{item['msg']}")
    return "invalid configuration: " + "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, raising SettingsError with a one-line message when a value is invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
