"""`tracking-gateway token create|list|revoke`: named API tokens (models.tokens) from the command line, while
gateways run. Each connects like `check` and exits 0, or 1 with one line on stderr saying why nothing was done.
A secret is printed once, by `create`, alone on the last line of standard output; nothing else ever shows it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import click

from gateway.maintenance import OpenBackend, command_runner
from gateway.settings import Settings
from models import defaults
from models.tokens import NamedTokens

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_EXPIRY = timedelta(days=3660)


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `45s` as a duration; ValueError naming what is wrong."""
    match = re.fullmatch(r"([1-9][0-9]{0,9})([smhd])", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is no duration: a whole number and a unit, s, m, h or d (e.g. 90d, 12h, 30s)")
    duration = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if duration > MAX_EXPIRY:
        raise ValueError(f"{text!r} is longer than {MAX_EXPIRY.days} days: leave --expires-in out for no expiry")
    return duration


def parse_rate(text: str) -> float:
    """`N/s` (N a positive number) as requests per second; ValueError naming what is wrong."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)/s", text.strip())
    rate = float(match[1]) if match is not None else 0.0
    if not 0 < rate <= defaults.MAX_TOKEN_RATE:
        raise ValueError(f"{text!r} is no rate: N/s with 0 < N <= {defaults.MAX_TOKEN_RATE:g}, e.g. 20/s or 0.5/s")
    return rate


class _Parsed(click.ParamType[Any]):
    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self._parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def _shown(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else "-"


def token_lines(tokens: list[dict[str, Any]]) -> list[str]:
    """`token list`'s table: name, access, job prefixes, created, expires, last used (never a secret)."""
    rows = [("NAME", "ACCESS", "JOBS", "CREATED", "EXPIRES", "LAST USED")]
    for token in tokens:
        jobs = ",".join(token["jobs"]) if token.get("jobs") else "*"
        rate = f" {token['rate']:g}/s" if token.get("rate") else ""
        rows.append(
            (
                str(token["_id"]),
                f"{token['access']}{rate}",
                jobs,
                _shown(token.get("created")),
                _shown(token.get("expires")),
                _shown(token.get("last_used")),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def install_token_commands(
    main: click.Group, open_backend: OpenBackend, settings_or_exit: Callable[[], Settings]
) -> None:
    """Add `token create|list|revoke` to the `tracking-gateway` group."""

    run_with_backend = command_runner(open_backend, settings_or_exit)

    def run(work: Callable[[NamedTokens], Awaitable[list[str]]]) -> None:
        run_with_backend(lambda backend, _settings: work(backend.store.named_tokens()))

    @main.group()
    def token() -> None:
        """Named API tokens, kept in MongoDB as hashes; every gateway honours a change within seconds."""

    @token.command()
    @click.argument("name")
    @click.option("--read-only", is_flag=True, help="Queries and subscriptions only (no writes, no mutations).")
    @click.option("--jobs", "jobs", multiple=True, metavar="PREFIX", help="Only jobs whose id starts so (repeat).")
    @click.option("--expires-in", type=_Parsed("duration", parse_duration), help="e.g. 90d, 12h, 30s.")
    @click.option("--rate", type=_Parsed("rate", parse_rate), help="Requests per second allowed, e.g. 20/s.")
    def create(
        name: str, read_only: bool, jobs: tuple[str, ...], expires_in: timedelta | None, rate: float | None
    ) -> None:
        """Create token NAME; its secret is printed once, alone on the last line."""

        async def work(tokens: NamedTokens) -> list[str]:
            secret = await tokens.create(name, write=not read_only, jobs=jobs, expires_in=expires_in, rate=rate)
            return [f"created token {name!r}; its secret, shown this once (keep it: only its hash is stored):", secret]

        run(work)

    @token.command("list")
    def list_tokens() -> None:
        """Every named token: name, access, job prefixes, created, expires, last used."""

        async def work(tokens: NamedTokens) -> list[str]:
            return token_lines(await tokens.listed())

        run(work)

    @token.command()
    @click.argument("name")
    def revoke(name: str) -> None:
        """Remove token NAME: every gateway refuses it within TRACKING_TOKENS_RELOAD_MS."""

        async def work(tokens: NamedTokens) -> list[str]:
            await tokens.revoke(name)
            return [f"revoked token {name!r}"]

        run(work)
