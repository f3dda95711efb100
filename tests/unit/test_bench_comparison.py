"""bench.comparison and bench.versions.measure_row: the order of the sides in each round, a row's medians and
ratios from its rounds, and a row the old version cannot serve."""

from __future__ import annotations

import asyncio
import math
import os
import re
import threading
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import versions
from bench.comparison import Compared, Sample, compare, round_order
from bench.data import Database
from bench.measure import CpuMeter
from bench.version_rows import Gateway, Measured, VersionRow
from bench.versions import arguments, chosen_rows, measure_row, settled


@given(st.integers(min_value=1, max_value=200))
def test_every_round_measures_both_sides_and_each_goes_first_in_half_of_them(rounds: int) -> None:
    orders = [round_order(number) for number in range(rounds)]
    assert all(sorted(order) == [0, 1] for order in orders)
    main_first = sum(order[0] == 0 for order in orders)
    assert abs(main_first - (rounds - main_first)) <= 1


def test_consecutive_rounds_swap_which_side_goes_first() -> None:
    assert [round_order(number) for number in range(4)] == [(0, 1), (1, 0), (0, 1), (1, 0)]


def sample(figure: float, operations: int = 1, gateway_cpu_s: float = 0.01, mongod_cpu_s: float = 0.0) -> Sample:
    return Sample(figure, operations, gateway_cpu_s, mongod_cpu_s)


def test_medians_ratio_and_paired_range_of_a_time_row() -> None:
    main = [sample(120), sample(100), sample(300)]
    old = [sample(100), sample(100), sample(100)]
    compared = compare(main, old, higher_is_better=False)
    assert compared.main.figure == 120
    assert compared.old.figure == 100
    assert compared.ratio == pytest.approx(1.2)
    assert compared.paired == pytest.approx((1.0, 3.0))
    assert compared.slowdown == pytest.approx(1.2)


def test_a_lower_rate_is_a_slowdown() -> None:
    compared = compare([sample(800)], [sample(1000)], higher_is_better=True)
    assert compared.ratio == pytest.approx(0.8)
    assert compared.slowdown == pytest.approx(1.25)


def test_cpu_is_per_operation() -> None:
    main = [sample(1, operations=4000, gateway_cpu_s=2.0, mongod_cpu_s=0.4)]
    old = [sample(1, operations=4000, gateway_cpu_s=1.0, mongod_cpu_s=0.4)]
    compared = compare(main, old, higher_is_better=True)
    assert compared.main.gateway_cpu_ms == pytest.approx(0.5)
    assert compared.old.gateway_cpu_ms == pytest.approx(0.25)
    assert compared.main.mongod_cpu_ms == pytest.approx(0.1)
    assert compared.cpu_ratio == pytest.approx(2.0)


def test_cpu_per_operation_is_over_all_rounds_together() -> None:
    """Rounds of a few short requests each use a clock tick of CPU or none: over all rounds the figure is their
    total over all their operations, not the median round's (which would be one of the few values a tick
    allows)."""
    ticks = [sample(1, operations=3, gateway_cpu_s=cpu) for cpu in (0.01, 0.0, 0.01, 0.0, 0.0)]
    compared = compare(ticks, ticks, higher_is_better=False)
    assert compared.main.gateway_cpu_ms == pytest.approx(20 / 15)


def test_cpu_below_a_clock_tick_gives_no_ratio() -> None:
    compared = compare([sample(1, gateway_cpu_s=0.01)], [sample(1, gateway_cpu_s=0.0)], higher_is_better=False)
    assert math.isnan(compared.cpu_ratio)


def test_sides_with_different_rounds_are_refused() -> None:
    with pytest.raises(ValueError, match="different numbers of rounds: 2 and 1"):
        compare([sample(1), sample(2)], [sample(1)], higher_is_better=False)
    with pytest.raises(ValueError, match="at least one measured round"):
        compare([], [], higher_is_better=False)


def gateway(name: str) -> Gateway:
    return Gateway(name, cast(Database, None), {}, CpuMeter((), os.getpid()))


def run_row(row: VersionRow, rounds: int) -> Compared | str:
    """measure_row with this process standing in for both gateways and mongod (their CPU is only read)."""
    me = os.getpid()
    session = cast(aiohttp.ClientSession, None)
    return asyncio.run(measure_row(row, session, (gateway("main"), gateway("old")), (me, me), me, rounds))


def test_rounds_alternate_and_the_warm_up_is_left_out() -> None:
    calls: list[str] = []
    figures = {"main": iter([999, 2, 4, 6]), "old": iter([999, 1, 1, 1])}

    async def measure(_: aiohttp.ClientSession, side: Gateway) -> Measured:
        calls.append(side.url)
        return Measured(next(figures[side.url]), 1)

    compared = run_row(VersionRow("row", "row", "ms", False, measure), rounds=3)
    assert calls == ["main", "old", "old", "main", "main", "old", "old", "main"]
    assert not isinstance(compared, str)
    assert compared.main.figure == 4
    assert compared.old.figure == 1
    assert compared.paired == (2, 6)


def test_prepare_runs_before_each_side_of_each_round() -> None:
    calls: list[str] = []

    async def prepare(side: Gateway) -> None:
        calls.append(f"prepare {side.url}")

    async def measure(_: aiohttp.ClientSession, side: Gateway) -> Measured:
        calls.append(side.url)
        return Measured(1, 1)

    run_row(VersionRow("row", "row", "ms", False, measure, prepare), rounds=1)
    assert calls == ["prepare main", "main", "prepare old", "old", "prepare old", "old", "prepare main", "main"]


def test_a_row_the_old_version_cannot_serve_is_skipped_with_why() -> None:
    async def measure(_: aiohttp.ClientSession, side: Gateway) -> Measured:
        assert side.url == "main", "GET /tracking/new-route: 404"
        return Measured(1, 1)

    result = run_row(VersionRow("row", "row", "ms", False, measure), rounds=3)
    assert result == "not served by the old version: AssertionError: GET /tracking/new-route: 404"


def test_a_failure_of_main_or_after_the_warm_up_is_not_hidden() -> None:
    async def main_fails(_: aiohttp.ClientSession, side: Gateway) -> Measured:
        assert side.url == "old", "main answered 500"
        return Measured(1, 1)

    with pytest.raises(AssertionError, match="main answered 500"):
        run_row(VersionRow("row", "row", "ms", False, main_fails), rounds=1)

    old_rounds = iter(range(10))

    async def old_fails_later(_: aiohttp.ClientSession, side: Gateway) -> Measured:
        if side.url == "old":
            assert next(old_rounds) == 0, "old answered 500 in round 1"
        return Measured(1, 1)

    with pytest.raises(AssertionError, match="old answered 500 in round 1"):
        run_row(VersionRow("row", "row", "ms", False, old_fails_later), rounds=2)


def checkout_with_venv(root: Path) -> Path:
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    return root


def test_rows_may_follow_the_options(tmp_path: Path) -> None:
    options = arguments([str(checkout_with_venv(tmp_path)), "--rounds", "15", "GET", "links"])
    assert options.rounds == 15
    assert options.rows == ["GET", "links"]
    assert not options.full


def test_no_venv_or_no_rounds_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        arguments([str(tmp_path)])
    assert f"{tmp_path}/.venv/bin/python not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments([str(checkout_with_venv(tmp_path)), "--rounds", "0"])
    assert "--rounds must be at least 1" in capsys.readouterr().err


def test_rows_are_chosen_by_key_or_part_of_their_name_in_their_order() -> None:
    assert [row.key for row in chosen_rows(["walk", "GET"])] == ["get", "roots", "walk"]
    assert [row.key for row in chosen_rows(["jobs"])] == ["jobs"]
    assert [row.key for row in chosen_rows(["clients"])] == ["get", "links"]
    assert [row.key for row in chosen_rows([])] == ["get", "roots", "create", "links", "graphql", "walk", "jobs"]
    with pytest.raises(SystemExit, match="no row matches \\['nothing'\\]: the rows are get, roots"):
        chosen_rows(["nothing"])


def test_settled_returns_once_the_gateways_are_idle(capsys: pytest.CaptureFixture[str]) -> None:
    """This process stands in for both gateways: asleep in the event loop, it uses no CPU."""
    asyncio.run(settled([os.getpid(), os.getpid()]))
    out = capsys.readouterr().out
    settled_after = re.search(r"gateways settled after (\d+) s \(CPU in the last second: main 0\.0\d s", out)
    assert settled_after is not None, out
    assert int(settled_after[1]) < versions.SETTLE_S  # at the first quiet second, not at its limit


def test_settled_gives_up_on_a_busy_gateway(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A thread of this process spinning: more than IDLE_CPU_S every second, so it waits SETTLE_S and goes on."""
    monkeypatch.setattr(versions, "SETTLE_S", 2.0)
    busy = threading.Event()

    def spin() -> None:
        while not busy.is_set():
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        asyncio.run(settled([os.getpid(), os.getpid()]))
    finally:
        busy.set()
        spinner.join()
    out = capsys.readouterr().out
    waited = re.search(r"gateways settled after (\d+) s \(CPU in the last second: main (\d\.\d\d) s", out)
    assert waited is not None, out
    assert 2 <= int(waited[1]) < 30  # at its limit, not before; a loaded machine wakes it late
    assert float(waited[2]) >= versions.IDLE_CPU_S
