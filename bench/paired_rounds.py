"""Rounds that measure several sides (gateway processes) one after the other, and what their paired figures say:
the order of the sides in each round, balanced over rounds, and a row's paired ratios (each round's figure of one
side over the same round's figure of another) summed up by their median and spread."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


def balanced_order(sides: int, round_number: int) -> list[int]:
    """The sides' indexes in the order round `round_number` measures them: a balanced Latin square (Williams'
    design) when `sides` is even, so that over any `sides` consecutive rounds each side is measured once in each
    position and right after each other side once. A measure runs on a machine the one before has warmed (or
    loaded), and a shared machine's load drifts: no side may be the one that always goes first, or always
    follows the same other side. (With an odd number of sides, positions are balanced, adjacencies not.)"""
    first_row: list[int] = []
    low, high = 0, sides - 1
    for position in range(sides):
        if position % 2 == 0:
            first_row.append(low)
            low += 1
        else:
            first_row.append(high)
            high -= 1
    shift = round_number % sides
    return [(side + shift) % sides for side in first_row]


@dataclass(frozen=True)
class PairedRatios:
    """One side's rounds over another's, round by round: their median, quartiles and range."""

    median: float
    low_quartile: float
    high_quartile: float
    lowest: float
    highest: float
    rounds: int

    @classmethod
    def of(cls, ours: list[float], theirs: list[float]) -> PairedRatios:
        if len(ours) != len(theirs) or not ours:
            raise ValueError(f"paired ratios need the same number of rounds on both sides: {len(ours)}, {len(theirs)}")
        ratios = [one / other for one, other in zip(ours, theirs, strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
        return cls(statistics.median(ratios), low, high, min(ratios), max(ratios), len(ratios))

    def text(self) -> str:
        return (
            f"median of {self.rounds} paired rounds {self.median:.3f}, quartiles {self.low_quartile:.3f}-"
            f"{self.high_quartile:.3f}, range {self.lowest:.3f}-{self.highest:.3f}"
        )
