"""Distinct subscription selections per caller (web.rate_limits.CallerLimits): a caller holds at most
TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER distinct selections at once, subscriptions sharing one count it once,
a refusal names the setting and counts nothing, and what ends is released. A model of the bound, checked
against every sequence of opens and closes hypothesis makes."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from web.auth import Access, Caller
from web.rate_limits import CallerLimits

CALLERS = (Caller("a", Access.READ), Caller("b", Access.WRITE))
# (caller, selection, open or close)
STEPS = st.lists(st.tuples(st.sampled_from(range(len(CALLERS))), st.sampled_from("pqrstu"), st.booleans()))


@given(steps=STEPS, bound=st.integers(1, 4), per_caller=st.one_of(st.none(), st.integers(1, 6)))
def test_a_caller_holds_at_most_the_bound_of_distinct_selections(steps, bound, per_caller):
    limits = CallerLimits(subscriptions_per_caller=per_caller, selections_per_caller=bound)
    held: list[Counter[str]] = [Counter() for _ in CALLERS]
    for who, selection, opening in steps:
        caller, mine = CALLERS[who], held[who]
        if not opening:
            if mine[selection]:
                limits.close_subscription(caller, selection)
                mine[selection] -= 1
                mine += Counter()  # drop the selections nobody holds any more
            continue
        refusal = limits.open_subscription(caller, selection)
        new = selection not in mine
        too_many = per_caller is not None and mine.total() >= per_caller
        if too_many:
            assert refusal is not None and "TRACKING_SUBSCRIPTIONS_PER_CALLER" in refusal
        elif new and len(mine) >= bound:
            assert refusal is not None and "TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER" in refusal
            assert f"at most {bound}" in refusal and repr(caller.name) in refusal
        else:
            assert refusal is None, refusal
            mine[selection] += 1
        assert len(mine) <= bound
    for who, mine in enumerate(held):  # everything released: the caller's whole room again
        for selection, count in mine.items():
            for _ in range(count):
                limits.close_subscription(CALLERS[who], selection)
    room = bound if per_caller is None else min(bound, per_caller)
    for caller in CALLERS:
        accepted = [limits.open_subscription(caller, f"fresh-{n}") for n in range(room)]
        assert accepted == [None] * room
        assert limits.open_subscription(caller, "one-more") is not None


def test_subscriptions_sharing_a_selection_count_it_once():
    limits = CallerLimits(selections_per_caller=1)
    caller = CALLERS[0]
    assert all(limits.open_subscription(caller, "dashboard") is None for _ in range(1000))
    assert limits.open_subscription(caller, "another") is not None
    assert limits.open_subscription(CALLERS[1], "another") is None  # another caller has room of its own
    for _ in range(999):
        limits.close_subscription(caller, "dashboard")
    assert limits.open_subscription(caller, "another") is not None  # one subscription still holds it
    limits.close_subscription(caller, "dashboard")
    assert limits.open_subscription(caller, "another") is None
