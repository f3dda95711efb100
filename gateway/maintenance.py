"""`tracking-gateway archive`, `restore` and `purge`: the data lifecycle of whole jobs (models.lifecycle) from the
command line. Each connects like `check` (TRACKING_MONGODB_URI, or the embedded MongoDB of TRACKING_DATA_DIR),
prints what it did, and exits 0, or 1 with one line on stderr saying why nothing was done."""

from __future__ import annotations

import math
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import click
import uvloop

from gateway.backend import Backend
from gateway.observability import configure_logging
from gateway.settings import MAX_PURGE_BATCH, MAX_RETENTION_DAYS, Settings
from models import GraphError
from models.archive import read_archive, write_archive

OpenBackend = Callable[[Settings], Awaitable[Backend]]
Work = Callable[[Backend, Settings], Awaitable[Iterable[str]]]
"""What a command does with the backend: the lines it prints on success."""


def command_runner(open_backend: OpenBackend, settings_or_exit: Callable[[], Settings]) -> Callable[[Work], None]:
    """How every command that works on the database runs: settings read, logging configured, the backend opened
    and closed, the work's lines printed, exit 0; or exit 1 with one line on stderr for a refused change."""

    def run(work: Work) -> None:
        settings = settings_or_exit()
        configure_logging(settings.log_level, settings.log_format)
        sys.exit(uvloop.run(_run(settings, open_backend, work)))

    return run


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange, refusing what no range check catches: nan (every comparison with it is false) and
    the infinities, as the settings refuse them (gateway.settings)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


INACTIVE_DAYS = FiniteFloatRange(min=0, max=MAX_RETENTION_DAYS)
"""The days of `purge --inactive-days`: those of TRACKING_RETENTION_DAYS, 0 included (everything inactive)."""


def install_maintenance_commands(
    main: click.Group, open_backend: OpenBackend, settings_or_exit: Callable[[], Settings]
) -> None:
    """Add archive, restore and purge to the `tracking-gateway` group."""
    run = command_runner(open_backend, settings_or_exit)

    @main.command()
    @click.option("--job-id", required=True, help="The job to archive.")
    @click.option(
        "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="FILE (.gz: gzip)"
    )
    def archive(job_id: str, out: Path) -> None:
        """Write a job's tasks and their history to FILE as JSON Lines (canonical Extended JSON); the job stays."""

        async def work(backend: Backend, _settings: Settings) -> list[str]:
            archived = await backend.store.lifecycle().archive_job(job_id)
            try:
                write_archive(archived, out, exclusive=True)
            except FileExistsError:
                raise GraphError(f"{out} exists already: choose another file (nothing was written)") from None
            counts = f"{len(archived.tasks)} tasks, {len(archived.history)} history entries"
            return [f"archived job {job_id!r}: {counts} to {out}"]

        run(work)

    @main.command()
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def restore(file: Path) -> None:
        """Put an archived job back exactly; refuses (changing nothing) when any of its task ids is in use."""

        async def work(backend: Backend, _settings: Settings) -> Iterable[str]:
            report = await backend.store.lifecycle().restore(read_archive(file))
            return report.lines()

        run(work)

    @main.command()
    @click.option(
        "--inactive-days",
        required=True,
        type=INACTIVE_DAYS,
        help="Purge jobs none of whose tasks was updated for this many days.",
    )
    @click.option(
        "--archive-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Archive each job here (one file per job) before it goes.",
    )
    @click.option("--dry-run", is_flag=True, help="List what would go; change nothing.")
    @click.option(
        "--batch",
        type=click.IntRange(min=1, max=MAX_PURGE_BATCH),
        default=None,
        help="Tasks per transaction (TRACKING_PURGE_BATCH).",
    )
    def purge(inactive_days: float, archive_dir: Path | None, dry_run: bool, batch: int | None) -> None:
        """Remove whole jobs (and tasks without a job) not updated for --inactive-days, with their history."""

        async def work(backend: Backend, settings: Settings) -> Iterable[str]:
            report = await backend.store.lifecycle().purge(
                inactive_days, archive_dir=archive_dir, dry_run=dry_run, batch=batch or settings.purge_batch
            )
            return report.lines()

        run(work)


async def _run(settings: Settings, open_backend: OpenBackend, work: Work) -> int:
    backend = await open_backend(settings)
    try:
        lines = list(await work(backend, settings))
    except GraphError as error:
        click.echo(f"tracking-gateway: {error.message}", err=True)
        return 1
    finally:
        await backend.close()
    for line in lines:
        click.echo(line)
    return 0
