"""gateway.tracing's mirror of the export queue: it says a span pushed another out exactly when the SDK's
bounded queue drops its oldest, from counts each written by one thread."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from gateway.tracing import _Backlog


@given(
    capacity=st.integers(min_value=1, max_value=8),
    steps=st.lists(st.one_of(st.just(0), st.integers(min_value=1, max_value=10)), max_size=60),
)
def test_the_backlog_counts_what_a_bounded_queue_drops(capacity: int, steps: list[int]):
    """0 ends a span (queued at the left, the oldest falls out at the right when full, as the SDK's deque);
    n takes a batch of up to n spans for export."""
    queue: deque[int] = deque(maxlen=capacity)
    backlog = _Backlog(capacity)
    for number, step in enumerate(steps):
        if step == 0:
            pushed_out = len(queue) == capacity
            queue.appendleft(number)
            assert backlog.add_one() is not pushed_out
        else:
            batch = [queue.pop() for _ in range(min(step, len(queue)))]
            backlog.take(len(batch))
