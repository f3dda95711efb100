"""What the app's lifespan hands every request, and the one typed way to read it."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol, TypedDict, cast

from opentelemetry.trace import Tracer
from starlette.requests import HTTPConnection

from models import GraphStore
from models.actors import ACTING
from web.auth import Caller, Callers
from web.limits import RequestLimits
from web.oidc import OidcVerifier
from web.rate_limits import CallerLimits


class ServingSettings(Protocol):
    """The settings a front end reads per request; gateway.settings.Settings is the one the app passes. A
    Protocol, so that web/ (and the front ends) need not import the composition root."""

    @property
    def graphql_max_traversal(self) -> int: ...

    @property
    def graphql_max_page(self) -> int: ...

    @property
    def graphql_max_history(self) -> int: ...

    @property
    def graphql_compiled(self) -> bool: ...

    @property
    def graphql_max_cost(self) -> int | None: ...

    @property
    def subscriptions_per_connection(self) -> int: ...

    @property
    def subscription_resume_ms(self) -> int: ...


class GatewayState(TypedDict):
    """What the lifespan yields: Starlette copies it into every request's scope (`scope["state"]`, which ASGI
    middleware reads too). The app keeps nothing else: no `app.state`. The app's own routes read more of it
    (gateway.app.AppState)."""

    store: GraphStore
    callers: Callers
    caller_limits: CallerLimits
    """Every caller's request rate and open subscriptions in this process (web.rate_limits)."""
    """Who presents a credential (web.auth: the one place deciding it)."""
    settings: ServingSettings
    limits: RequestLimits
    tracer: Tracer | None
    """Where the front ends' spans go (GraphQL operations); None when this app traces nothing."""
    oidc: OidcVerifier | None
    """Verifies `Authorization: Bearer` JWTs (web.oidc); None without TRACKING_OIDC_ISSUER."""


def gateway_state(connection: HTTPConnection) -> GatewayState:
    """The lifespan's state as a request or WebSocket handler sees it, typed (`request.state.x` is `Any`)."""
    return cast(GatewayState, connection.scope["state"])


CALLER_STATE_KEY = "caller"
"""Where a request's Caller is kept in its state (`scope["state"]`) once its credential was checked: the front
ends, the access log and the metrics read it there."""


def request_caller(scope: Mapping[str, Any]) -> Caller | None:
    """The Caller a request was authenticated as; None before authentication or without a credential."""
    caller = scope.get("state", {}).get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


CALLER_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar("caller_name", default=None)
"""Who the request being served is (`caller_label`), for its log lines (the access log's included)."""


def caller_label(caller: Caller) -> str:
    """How logs name a caller: its name, and the issuer of a JWT subject."""
    return caller.name if caller.issuer is None else f"{caller.name} ({caller.issuer})"


def keep_caller(scope: MutableMapping[str, Any], caller: Caller) -> None:
    """Remember the request's Caller in its state (see `request_caller`), in a copy of that state made for this
    request: a server may hand every request the lifespan's one dict (ASGI asks servers to copy it; not every
    one does), and one request's caller must never be another's. Its log lines name it (CALLER_NAME)."""
    scope["state"] = {**scope.get("state", {}), CALLER_STATE_KEY: caller}
    act_as(caller)


def act_as(caller: Caller | None) -> None:
    """Name `caller` in this context's log lines (CALLER_NAME) and as the actor of the changes made in it
    (models.actors.ACTING)."""
    CALLER_NAME.set(caller_label(caller) if caller is not None else None)
    ACTING.set((caller.name, caller.issuer) if caller is not None else None)


NO_JOBS: tuple[str, ...] = ()
"""The scope of a request without a caller: no job at all (nothing is served to it anyway)."""


def store_for(store: GraphStore, caller: Caller | None) -> GraphStore:
    """The graph store as `caller` may see it: narrowed to its jobs (models.scopes); nothing without a
    caller."""
    return store.scoped(caller.jobs if caller is not None else NO_JOBS)


def caller_store(scope: Mapping[str, Any]) -> GraphStore:
    """The graph store as the request's caller may see it (`store_for`)."""
    return store_for(scope["state"]["store"], request_caller(scope))
