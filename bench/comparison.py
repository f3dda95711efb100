"""How `python -m bench.versions` compares two versions of the gateway: the order of the sides in each round, and
a row's figures (each side's median, the ratio main/old, CPU per operation) from its rounds' samples."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

SIDES = ("main", "old")
"""The two versions: this checkout ("main") and the other one ("old"); ratios are main / old."""


def round_order(round_number: int) -> tuple[int, int]:
    """The sides' indexes in the order round `round_number` measures them: main first in even rounds, old first
    in odd ones. The second of two back-to-back measures runs on a machine the first has warmed (or loaded), and
    a shared machine's load drifts: alternating which goes first spreads both over the two sides alike."""
    return (0, 1) if round_number % 2 == 0 else (1, 0)


@dataclass(frozen=True)
class Sample:
    """One side's round: its figure (in the row's unit), how many operations it made, and the CPU seconds the
    side's gateway process and mongod used meanwhile (from /proc)."""

    figure: float
    operations: int
    gateway_cpu_s: float
    mongod_cpu_s: float

    @property
    def gateway_cpu_ms(self) -> float:
        """Gateway CPU milliseconds per operation."""
        return self.gateway_cpu_s * 1000 / self.operations

    @property
    def mongod_cpu_ms(self) -> float:
        """mongod CPU milliseconds per operation."""
        return self.mongod_cpu_s * 1000 / self.operations


@dataclass(frozen=True)
class Side:
    """One side over its rounds: the median figure, and CPU per operation over all its rounds together (the CPU
    of all rounds over all their operations: a round of a few short requests uses a few clock ticks of CPU, so
    a median of rounds would only pick between two or three values)."""

    figure: float
    gateway_cpu_ms: float
    mongod_cpu_ms: float


@dataclass(frozen=True)
class Compared:
    """A row compared: each side's medians, the ratio of the medians (main / old), the range of the rounds'
    paired ratios (main's round against old's round of the same number), and the ratio of gateway CPU per
    operation. `slowdown` and `cpu_slowdown` say how much worse main is whatever the unit (above 1: worse)."""

    main: Side
    old: Side
    ratio: float
    paired: tuple[float, float]
    cpu_ratio: float
    higher_is_better: bool

    @property
    def slowdown(self) -> float:
        return 1 / self.ratio if self.higher_is_better else self.ratio

    @property
    def cpu_slowdown(self) -> float:
        return self.cpu_ratio


def side_of(samples: list[Sample]) -> Side:
    if not samples:
        raise ValueError("a side needs at least one measured round")
    operations = sum(sample.operations for sample in samples)
    return Side(
        statistics.median(sample.figure for sample in samples),
        sum(sample.gateway_cpu_s for sample in samples) * 1000 / operations,
        sum(sample.mongod_cpu_s for sample in samples) * 1000 / operations,
    )


def compare(main: list[Sample], old: list[Sample], higher_is_better: bool) -> Compared:
    """The row's figures from the measured rounds (warm-ups left out by the caller) of both sides, which must
    have run the same number of rounds."""
    if len(main) != len(old):
        raise ValueError(f"the sides ran different numbers of rounds: {len(main)} and {len(old)}")
    main_side, old_side = side_of(main), side_of(old)
    paired = [ratio(ours.figure, theirs.figure) for ours, theirs in zip(main, old, strict=True)]
    return Compared(
        main_side,
        old_side,
        ratio(main_side.figure, old_side.figure),
        (min(paired), max(paired)),
        ratio(main_side.gateway_cpu_ms, old_side.gateway_cpu_ms),
        higher_is_better,
    )


def ratio(main: float, old: float) -> float:
    """main / old; NaN when old is 0 (a CPU figure below /proc's resolution of a clock tick)."""
    return main / old if old else float("nan")
