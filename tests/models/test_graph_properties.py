"""Property test: random sequences of create / link / unlink / delete keep the link invariant (b is in a's nexts
exactly when a is in b's previous, and every linked id exists), and the stored graph always equals a plain
in-memory model of what was acknowledged (nothing lost, nothing invented)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import InvalidOperation, TaskAlreadyExists, TaskNotFound
from tests.helpers import assert_link_invariant, reachable, task

IDS = st.integers(min_value=1, max_value=8)
OPERATIONS = st.one_of(
    st.tuples(st.just("create"), IDS, st.lists(IDS, max_size=2)),
    st.tuples(st.just("link"), IDS, IDS),
    st.tuples(st.just("link-previous"), IDS, IDS),
    st.tuples(st.just("unlink"), IDS, IDS),
    st.tuples(st.just("delete"), IDS),
)


class Model:
    def __init__(self) -> None:
        self.nodes: set[int] = set()
        self.edges: set[tuple[int, int]] = set()

    def expected_link_error(self, a: int, b: int) -> type[Exception] | None:
        if a == b:  # refused as malformed before any lookup
            return InvalidOperation
        if a not in self.nodes or b not in self.nodes:
            return TaskNotFound
        if (a, b) not in self.edges and reachable(self.edges, b, a):
            return InvalidOperation
        return None


async def apply(store, model: Model, operation: tuple) -> None:
    kind = operation[0]
    if kind == "create":
        _, task_id, child_ids = operation
        ids = [task_id, *child_ids]
        if len(set(ids)) < len(ids):
            expected: type[Exception] | None = InvalidOperation
        elif set(ids) & model.nodes:
            expected = TaskAlreadyExists
        else:
            expected = None
        spec = task(id=task_id, nexts={"tasks": [{"id": child} for child in child_ids]})
        await expect(expected, store.create_tasks([spec]))
        if expected is None:
            model.nodes.update(ids)
            model.edges.update((task_id, child) for child in child_ids)
    elif kind in ("link", "link-previous"):
        _, a, b = operation
        expected = model.expected_link_error(a, b)
        call = store.add_nexts(a, [b]) if kind == "link" else store.add_previous(b, [a])
        await expect(expected, call)
        if expected is None:
            model.edges.add((a, b))
    elif kind == "unlink":
        _, a, b = operation
        expected = None if {a, b} <= model.nodes else TaskNotFound
        await expect(expected, store.remove_nexts(a, [b]))
        model.edges.discard((a, b))
    else:
        _, task_id = operation
        expected = None if task_id in model.nodes else TaskNotFound
        await expect(expected, store.delete_task(task_id))
        model.nodes.discard(task_id)
        model.edges = {(a, b) for a, b in model.edges if task_id not in (a, b)}


async def expect(error: type[Exception] | None, call) -> None:
    try:
        await call
    except Exception as raised:
        assert error is not None and isinstance(raised, error), f"unexpected {raised!r}"
        return
    assert error is None, f"expected {error.__name__}"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATIONS, max_size=20))
async def test_random_operations_keep_the_link_invariant(store, raw_db, operations):
    await raw_db.tasks.delete_many({})
    model = Model()
    for operation in operations:
        await apply(store, model, operation)
        edges = await assert_link_invariant(raw_db)
        assert edges == model.edges, f"after {operation}"
        stored_ids = {doc["_id"] async for doc in raw_db.tasks.find({}, {"_id": 1})}
        assert stored_ids == model.nodes
