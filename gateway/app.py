"""The app factory: one FastAPI app serving /tracking (REST), /graphql, the live view (/ui) and the health
probes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware import Middleware
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from opentelemetry.trace import Tracer
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import Scope

import graphql_schema
import rest
from gateway.backend import Backend
from gateway.caching import CacheHeaders
from gateway.middleware import (
    BodySizeLimitMiddleware,
    ExpectContinueMiddleware,
    HeadAsGetMiddleware,
    RequestIdMiddleware,
)
from gateway.observability import HttpMetrics, metrics, never_log
from gateway.server_spans import ServerSpans
from gateway.settings import Settings
from gateway.sign_in import install_sign_in
from gateway.tracing import Tracing, start_tracing
from models import GraphStore
from models.closing import Bound, stop_task
from models.tokens import TokenCache
from rest import FastTaskRead, TrackingGuard
from rest.guard import PREFIX as REST_PREFIX
from ui import UI_DIR
from web.auth import Callers, TokenRegistry, generated_token
from web.named_tokens import NamedTokenCallers
from web.oidc import OidcVerifier
from web.page_security import (
    LIVE_VIEW,
    REDOC,
    SWAGGER_UI,
    SecurityHeadersMiddleware,
    page_headers,
    page_response,
    signing_in,
)
from web.rate_limits import CallerLimits
from web.state import GatewayState, gateway_state


class GatewayApp(FastAPI):
    """The app: FastAPI's, with the /tracking API's OpenAPI document as the legacy contract describes it."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = rest.documented_openapi(super().openapi())
        return self.openapi_schema


class AppState(GatewayState):
    """The lifespan's state with what only the app's own routes (the health probes) read: the backend."""

    backend: Backend


def app_state(connection: HTTPConnection) -> AppState:
    """The lifespan's state as the app's own routes see it (the front ends read web.state.gateway_state)."""
    return cast(AppState, connection.scope["state"])


def environment_tokens(settings: Settings) -> TokenRegistry:
    """TRACKING_API_TOKENS, or else the token generated and kept in the data dir; none of them is ever logged."""
    tokens = list(settings.api_tokens) or [generated_token(settings.data_dir)[0]]
    never_log([*tokens, *settings.read_tokens])
    return TokenRegistry(tokens, settings.read_tokens)


STATIC = Path(__file__).parent / "static"
SWAGGER_UI_PAGE = (Path(__file__).parent / "swagger-ui.html").read_text()
"""Swagger UI on the gateway's own assets, with the token every page shares (static/token.js)."""
REDOC_PAGE = (Path(__file__).parent / "redoc.html").read_text()
"""ReDoc on the gateway's own assets (it reads the public /openapi.json only)."""


def install_pages(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, on assets served from gateway/static (no page needs the
    internet: NFV networks often have none). GraphiQL is served by the GraphQL router."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_live_view(app)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return page_response(SWAGGER_UI_PAGE, SWAGGER_UI)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return page_response(REDOC_PAGE, REDOC)


UI_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
UI_FILES = {path.name: UI_MEDIA_TYPES[path.suffix] for path in UI_DIR.iterdir() if path.suffix in UI_MEDIA_TYPES}
"""The live view's files: its scripts and its style sheet, as the package ships them (ui/__init__.py's folder)."""


def install_live_view(app: FastAPI) -> None:
    """The live view (ui/) at /ui/: the page needs no token (it asks for one and calls /graphql with it)."""

    @app.get("/ui", include_in_schema=False)
    async def live_view_home() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/", include_in_schema=False)
    async def live_view(request: Request) -> FileResponse:
        verifier = gateway_state(request)["oidc"]
        policy = signing_in(LIVE_VIEW, verifier.page_token_endpoint if verifier is not None else None)
        return FileResponse(UI_DIR / "index.html", media_type="text/html", headers=page_headers(policy))

    @app.get("/ui/{name}", include_in_schema=False)
    async def live_view_file(name: str) -> FileResponse:
        if name not in UI_FILES:
            raise HTTPException(404, f"no file {name} in the live view")
        return FileResponse(UI_DIR / name, media_type=UI_FILES[name])


def front_end_refusal(status: int, message: str, scope: Scope) -> Response:
    """A request refused before it reaches its front end (the body limit), in that front end's shape: GraphQL's
    `errors[]` on /graphql, the REST Error body elsewhere."""
    accept = Headers(scope=scope).get("accept")
    if scope["path"] == graphql_schema.GRAPHQL_PATH:
        media_type = graphql_schema.response_media_type_or_json(accept)
        return graphql_schema.error_response(status, message, "BAD_REQUEST", media_type)
    return rest.error_response(status, message, accept)


def needs_token(path: str) -> bool:
    """Whether answers on this path are token-gated (REST's and GraphQL's, GraphiQL's page sharing the path)."""
    return path.startswith(REST_PREFIX) or path == graphql_schema.GRAPHQL_PATH


def middleware_stack(settings: Settings, tracer: Tracer | None = None) -> list[Middleware]:
    """Every request passes these in this order, which fixes the documented order of checks. With `tracer`, a
    server span around them all (gateway.server_spans)."""
    cors = Middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["X-Auth-Token", "Authorization", "Content-Type", "Accept", "X-Request-ID", "Idempotency-Key"],
        expose_headers=["X-Request-ID"],
        max_age=600,
    )
    return [
        *([Middleware(ServerSpans, tracer=tracer)] if tracer is not None else []),
        Middleware(SecurityHeadersMiddleware),  # nosniff on every answer, a policy on every page (page_security)
        Middleware(CacheHeaders, gated=needs_token),  # no-store and Vary: Accept on every token-gated answer
        Middleware(RequestIdMiddleware),  # every answer, even a 413, carries X-Request-ID; last-resort 500s
        Middleware(HttpMetrics),
        Middleware(HeadAsGetMiddleware),  # HEAD wherever GET is
        *([cors] if settings.cors_origins else []),  # a preflight is answered before any token is asked for
        Middleware(TrackingGuard),  # /tracking: token (403), the caller's rate (429), then Accept (406)
        Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, refusal=front_end_refusal),  # 413
        Middleware(ExpectContinueMiddleware, prefix=REST_PREFIX),  # 100 Continue before every REST operation
        Middleware(FastTaskRead),  # GET /tracking/task/{taskId} without the router (rest.fast_read)
    ]


@asynccontextmanager
async def bearer_verifier(settings: Settings) -> AsyncIterator[OidcVerifier | None]:
    """The verifier of bearer JWTs (None without TRACKING_OIDC_ISSUER). Its keys are asked for in the background
    at once: an issuer that cannot be reached is logged and never stops the gateway (web.oidc_keys)."""
    config = settings.oidc
    if config is None:
        yield None
        return
    verifier = OidcVerifier(config)
    warming = asyncio.create_task(verifier.warm_up())
    try:
        yield verifier
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)
        await verifier.keys.aclose()


@asynccontextmanager
async def owned_backend(settings: Settings, tracing: Tracing | None) -> AsyncIterator[Backend]:
    """A backend opened here, with what runs beside it (history writer, mongod supervision), closed here."""
    backend = await Backend.open(settings, tracing.provider if tracing is not None else None)
    backend.start_background(settings)
    try:
        yield backend
    finally:
        await backend.close()


@asynccontextmanager
async def named_tokens(store: GraphStore, settings: Settings) -> AsyncIterator[TokenCache]:
    """The named tokens, loaded before the first request and reloaded while the app serves (models.tokens)."""
    cache = TokenCache(store.named_tokens(), settings.tokens_reload_ms / 1000, settings.token_last_used_s)
    task = asyncio.create_task(cache.run(), name="named tokens")
    try:
        # At most one MongoDB deadline: a MongoDB slow or away at start holds nothing up longer, the environment's
        # tokens serve at once, and a request with another token waits for the load itself (web.named_tokens).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(cache.loaded.wait(), store.timeout_s)
        yield cache
    finally:
        # The reload and the last write share one MongoDB deadline: with MongoDB gone, a shutdown waits no longer.
        bound = Bound(store.timeout_s)
        await stop_task(task, bound)
        with contextlib.suppress(Exception):  # what was used since the last write, best effort at shutdown
            async with asyncio.timeout(bound.left()):
                await cache.write_last_used()


@asynccontextmanager
async def borrowed(backend: Backend) -> AsyncIterator[Backend]:
    """A backend its opener runs and closes (the CLI, tests)."""
    yield backend


def create_app(settings: Settings, backend: Backend | None = None, tracing: Tracing | None = None) -> FastAPI:
    """Build the app. Whoever opens the backend closes it: without `backend` the app's lifespan opens one and
    closes it at shutdown; a given one is only used (the CLI opens it first, to report start-up errors in one
    line, and closes it after serving). Tracing likewise: without `tracing`, the app starts what the settings
    ask for (gateway.tracing) and its lifespan stops it; a given one (whose provider the given backend's store
    was opened with) is only used."""
    environment = environment_tokens(settings)
    caller_limits = CallerLimits(
        settings.caller_rate, settings.subscriptions_per_caller, settings.subscription_selections_per_caller
    )
    owned_tracing = start_tracing(settings) if tracing is None else None
    tracing = tracing or owned_tracing
    tracer = tracing.provider.get_tracer("tracking-gateway") if tracing is not None else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        try:
            async with (
                owned_backend(settings, tracing) if backend is None else borrowed(backend) as current,
                named_tokens(current.store, settings) as cache,
                bearer_verifier(settings) as oidc,
            ):
                state: AppState = {
                    "backend": current,
                    "store": current.store,
                    "callers": Callers(environment, NamedTokenCallers(cache, current.store.timeout_s), bearer=oidc),
                    "caller_limits": caller_limits,
                    "settings": settings,
                    "limits": settings.limits,
                    "tracer": tracer,
                    "oidc": oidc,
                }
                yield state
        finally:
            if owned_tracing is not None:
                await owned_tracing.shutdown()

    app = GatewayApp(
        title="NFVD tracking API",
        version="4.2.0",
        description="REST resources related with the execution and management of task.",
        lifespan=lifespan,
        middleware=middleware_stack(settings, tracer),
        # FastAPI's own telemetry stays off: the server span is gateway.server_spans' (docs/decisions/tracing.md).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # served below, on the gateway's own assets
        redoc_url=None,
        # No redirect to the path with(out) a trailing slash: Starlette builds it from the Host header (an
        # http:// URL behind a TLS proxy, any host a client names) and a 307 loses POST bodies of clients that do
        # not follow it. Such paths are unknown: 404 with an Error body.
        redirect_slashes=False,
    )
    rest.install(app)
    graphql_schema.install(
        app,
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_tokens=settings.graphql_max_tokens,
        max_fragment_depth=settings.graphql_max_fragment_depth,
        limits=settings.limits,
    )
    app.add_route("/metrics", metrics, include_in_schema=False)
    install_pages(app)
    install_sign_in(app, settings)

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        """Whether this process can serve, now or once MongoDB answers again: a gateway whose embedded mongod
        could not be kept running says no, so that its supervisor replaces it."""
        failure = app_state(request)["backend"].failure
        if failure is not None:
            return JSONResponse({"status": "failed", "reason": failure}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Whether MongoDB answers a ping within a second (probes give up after a few), and whether this process's
        task history writer can go on (one that keeps failing says why here, and hands its lease over)."""
        state = app_state(request)
        if not await state["store"].is_ready(timeout_s=1.0):
            return JSONResponse({"status": "unavailable", "reason": "MongoDB does not answer"}, status_code=503)
        history_failure = state["backend"].history_failure()
        if history_failure is not None:
            return JSONResponse({"status": "unavailable", "reason": history_failure}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
