"""bench.paired_rounds: the order of the sides in each round is balanced over rounds, and a row's paired ratios
are summed up by their median and spread."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.paired_rounds import PairedRatios, balanced_order


@given(sides=st.integers(min_value=1, max_value=9), cycles=st.integers(min_value=1, max_value=4))
def test_over_as_many_rounds_as_sides_each_side_takes_each_position_once(sides: int, cycles: int):
    orders = [balanced_order(sides, number) for number in range(sides * cycles)]
    assert all(sorted(order) == list(range(sides)) for order in orders)
    for position in range(sides):
        at_position = [order[position] for order in orders]
        assert all(at_position.count(side) == cycles for side in range(sides))


@given(sides=st.integers(min_value=1, max_value=5).map(lambda half: half * 2))
def test_with_an_even_number_of_sides_each_follows_each_other_once_per_cycle(sides: int):
    """A measure runs on a machine the one before warmed or loaded: no side always follows the same one."""
    follows = [
        (order[position - 1], order[position])
        for order in (balanced_order(sides, number) for number in range(sides))
        for position in range(1, sides)
    ]
    assert sorted(follows) == sorted((one, other) for one in range(sides) for other in range(sides) if one != other)


def test_paired_ratios_are_taken_round_by_round_not_from_the_medians():
    """A drift of the machine's load moves both figures of a round alike: the pair's ratio stays."""
    paired = PairedRatios.of([1.1, 2.2, 3.3, 4.4], [1.0, 2.0, 3.0, 4.0])
    assert paired.median == pytest.approx(1.1) and paired.lowest == pytest.approx(1.1)
    assert paired.highest == pytest.approx(1.1) and paired.rounds == 4
    spread = PairedRatios.of([1.0, 1.2, 0.9, 1.5, 1.1], [1.0] * 5)
    summary = (spread.lowest, spread.low_quartile, spread.median, spread.high_quartile, spread.highest)
    assert summary == pytest.approx((0.9, 1.0, 1.1, 1.2, 1.5))
    assert "median of 5 paired rounds 1.100, quartiles 1.000-1.200, range 0.900-1.500" in spread.text()


@pytest.mark.parametrize(("ours", "theirs"), [([], []), ([1.0], [1.0, 2.0])])
def test_paired_ratios_need_rounds_on_both_sides_alike(ours: list[float], theirs: list[float]):
    with pytest.raises(ValueError, match="same number of rounds"):
        PairedRatios.of(ours, theirs)
