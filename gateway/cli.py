"""`tracking-gateway`: run the gateway (`serve`, the default) or show the generated API token."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator

import click
import uvicorn
import uvloop

from gateway.backend import Backend
from gateway.embedded import EmbeddedMongo, EmbeddedMongoError
from gateway.heap import HeapUpkeep, freeze_startup_heap, keep_heap_frozen
from gateway.maintenance import install_maintenance_commands
from gateway.observability import configure_logging
from gateway.settings import Settings, SettingsError, load_settings
from gateway.token_commands import install_token_commands
from gateway.tracing import Tracing, start_tracing
from models import StorageUnavailable, TransactionsUnsupported
from web.auth import generated_token

log = logging.getLogger("gateway")
STARTUP_ERRORS = (EmbeddedMongoError, TransactionsUnsupported, StorageUnavailable)


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        click.echo(f"tracking-gateway: {error}", err=True)
        sys.exit(2)


def _live_view_link(settings: Settings) -> str:
    wildcard = settings.host in ("0.0.0.0", "::", "")  # noqa: S104 - recognising it, not binding to it
    return f"http://{'127.0.0.1' if wildcard else settings.host}:{settings.port}/ui/"


def _announce_generated_token(settings: Settings) -> None:
    """The generated token, if the gateway uses one, and the live view's link carrying it in the fragment
    (which the browser keeps to itself). On the terminal only: tokens never go to the logs."""
    if settings.api_tokens:
        return
    token, path = generated_token(settings.data_dir)
    click.echo(
        f"No TRACKING_API_TOKENS set: use this X-Auth-Token (kept in {path}):\n  {token}\n"
        f"Live view of jobs and their task graphs: {_live_view_link(settings)}#token={token}",
        err=True,
    )


async def _open_backend(settings: Settings, tracing: Tracing | None = None) -> Backend:
    try:
        return await Backend.open(settings, tracing.provider if tracing is not None else None)
    except STARTUP_ERRORS as error:
        click.echo(f"tracking-gateway: cannot start: {error}", err=True)
        sys.exit(1)


class GatewayServer(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once it has shut down, which would end the process before
    the gateway closed what it opened: here the gateway closes MongoDB, then exits by itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


async def _serve(settings: Settings) -> int:
    """Serve until stopped; the exit status is 1 when the embedded mongod could not be kept running."""
    # Imported here, not with the module: the app and its front ends are most of the start-up's imports, which
    # the other commands (check, token, archive, purge, …) do not need.
    from gateway.app import create_app
    from gateway.server import server_config

    tracing = start_tracing(settings)
    backend = await _open_backend(settings, tracing)
    server = GatewayServer(server_config(create_app(settings, backend, tracing), settings))

    def stop_serving(_reason: str) -> None:
        server.should_exit = True

    backend.start_background(settings, stop_serving)
    log.info("live view of jobs and their task graphs: %s", _live_view_link(settings))
    freeze_startup_heap()
    upkeep = asyncio.create_task(keep_heap_frozen(HeapUpkeep(backend.store.live.counts)), name="heap upkeep")
    try:
        await server.serve()
    finally:
        upkeep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await upkeep
        await backend.close()
        if tracing is not None:
            await tracing.shutdown()
    return 1 if backend.failure is not None else 0


async def _check(settings: Settings, repair: bool) -> int:
    backend = await _open_backend(settings)
    try:
        report = await backend.store.check(repair=repair)
    finally:
        await backend.close()
    for line in report.lines():
        click.echo(line)
    return 1 if report.problems_left else 0


@click.group(invoke_without_command=True)
@click.pass_context
def main(context: click.Context) -> None:
    """The tracking gateway. Configured by TRACKING_* environment variables (see docs/reference/settings.md),
    traces by OpenTelemetry's OTEL_* ones (docs/operations/tracing.md)."""
    if context.invoked_subcommand is None:
        context.invoke(serve)


@main.command()
def serve() -> None:
    """Start the gateway (and the embedded MongoDB when TRACKING_MONGODB_URI is unset)."""
    settings = _settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    _announce_generated_token(settings)
    # uvloop, as `uvicorn.run` would pick: the gateway runs uvicorn's Server in a loop of its own making (to
    # open MongoDB first and report start-up errors in one line), so it must choose the loop itself.
    sys.exit(uvloop.run(_serve(settings)))


@main.command()
@click.option("--repair", is_flag=True, help="Complete one-sided links and remove dangling ids, in transactions.")
def check(repair: bool) -> None:
    """Scan the tasks for broken links, cycles, wrong types and ids off the layout; exit 1 if any is left."""
    settings = _settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    sys.exit(uvloop.run(_check(settings, repair)))


@main.command("mongodb-uri")
def mongodb_uri() -> None:
    """Print the MongoDB URI the gateway uses (for mongosh, mongoexport and other ops tools)."""
    settings = _settings_or_exit()
    if settings.mongodb_uri is not None:
        click.echo(settings.mongodb_uri)
        return
    try:
        click.echo(EmbeddedMongo(settings.data_dir).last_uri())
    except EmbeddedMongoError as error:
        click.echo(f"tracking-gateway: {error}", err=True)
        sys.exit(1)


@main.command("show-token")
def show_token() -> None:
    """Print the generated API token (used when TRACKING_API_TOKENS is unset)."""
    settings = _settings_or_exit()
    token, _ = generated_token(settings.data_dir)
    click.echo(token)


install_maintenance_commands(main, _open_backend, _settings_or_exit)  # archive, restore, purge
install_token_commands(main, _open_backend, _settings_or_exit)  # token create, list, revoke
