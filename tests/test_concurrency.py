"""Link additions racing in two stores (two gateway processes' worth of state on one database): never a cycle,
nothing acknowledged lost, and additions on different jobs not waiting for each other (models.locks)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import GraphStore, InvalidOperation, TaskPatch
from tests.helpers import assert_link_invariant, reachable, task

JOB_OF_EVERY_TASK = {1: "job-a", 2: "job-b", 3: "job-c", 4: "job-d"}


@pytest.mark.parametrize("jobs", [{}, {1: "job", 2: "job", 3: "job", 4: "job"}, JOB_OF_EVERY_TASK])
async def test_two_stores_racing_cycle_closing_links_never_both_win(store, other_store, raw_db, jobs):
    """With b->c and d->a stored, a->b and c->d each look safe alone and write disjoint tasks, so no conflict
    on a task stops them; together they close a->b->c->d->a. With every task in a job of its own, only the
    lock of a job one search read and the other wrote an endpoint of can refuse one of them."""
    rounds = 20
    for round_ in range(rounds):
        a, b, c, d = (round_ * 4 + i for i in (1, 2, 3, 4))
        await store.create_tasks([task(id=round_ * 4 + i, job_id=jobs.get(i)) for i in (1, 2, 3, 4)])
        await store.add_nexts(b, [c])
        await store.add_nexts(d, [a])
        outcomes = await asyncio.gather(store.add_nexts(a, [b]), other_store.add_nexts(c, [d]), return_exceptions=True)
        refused = [outcome for outcome in outcomes if isinstance(outcome, InvalidOperation)]
        assert len(refused) == 1, outcomes
        assert "would close a cycle" in refused[0].message
    edges = await assert_link_invariant(raw_db)
    assert len(edges) == 3 * rounds


@pytest.mark.parametrize("size", [2, 3, 4])
async def test_racing_additions_that_take_no_lock_never_close_a_cycle(store, other_store, raw_db, size):
    """Every link of a cycle of fresh tasks (no other link) raced at once through two stores: each first try
    reads nothing beyond its two tasks, so it bumps no lock (models.locks); each link shares a task with the next
    one, so they conflict on the tasks themselves, the losers run again on what the winners stored, and exactly
    one link of the cycle is refused."""
    rounds = 10
    for round_ in range(rounds):
        ids = [round_ * size + i for i in range(1, size + 1)]
        await store.create_tasks([task(id=task_id, job_id=f"free-{task_id}") for task_id in ids])
        cycle = list(zip(ids, ids[1:] + ids[:1], strict=True))
        stores = [store, other_store]
        outcomes = await asyncio.gather(
            *(stores[index % 2].add_nexts(a, [b]) for index, (a, b) in enumerate(cycle)), return_exceptions=True
        )
        refused = [outcome for outcome in outcomes if isinstance(outcome, InvalidOperation)]
        assert len(refused) == 1 and "would close a cycle" in refused[0].message, outcomes
    edges = await assert_link_invariant(raw_db)
    assert len(edges) == (size - 1) * rounds
    for a, b in edges:
        assert not reachable(edges - {(a, b)}, b, a)


async def test_an_addition_in_one_job_does_not_wait_for_another_jobs(store, raw_db):
    """Another process holds job "busy"'s lock in an open transaction (as an addition in flight there does):
    an addition in job "free" commits meanwhile; one in "busy" commits only once that transaction ends. Both
    additions' searches read beyond their endpoints (each endpoint has links on the searched side), so both
    take their job's lock (models.locks)."""
    busy, free = [1, 2, 5, 6], [3, 4, 7, 8]
    await store.create_tasks([task(id=i, job_id="busy" if i in busy else "free") for i in busy + free])
    for a, b in ((2, 5), (6, 1), (4, 7), (8, 3)):
        await store.add_nexts(a, [b])
    async with raw_db.client.start_session() as session:
        await session.start_transaction()
        await raw_db.counters.update_one({"_id": "task-links:busy"}, {"$inc": {"seq": 1}}, upsert=True, session=session)
        waiting = asyncio.create_task(store.add_nexts(1, [2]))
        assert [doc["_id"] for doc in await store.add_nexts(3, [4])] == [4]
        with pytest.raises(TimeoutError):  # it cannot commit while the lock is held (within its 10 s deadline)
            await asyncio.wait_for(asyncio.shield(waiting), 1.0)
        await session.commit_transaction()
    assert [doc["_id"] for doc in await waiting] == [2]
    assert await assert_link_invariant(raw_db) == {(1, 2), (2, 5), (6, 1), (3, 4), (4, 7), (8, 3)}


async def test_moving_a_task_to_another_job_bumps_both_jobs_link_locks(store, raw_db):
    await store.create_tasks([task(id=1, job_id="old")])

    async def locks() -> dict[str, int]:
        return {doc["_id"]: doc["seq"] async for doc in raw_db.counters.find({"_id": {"$regex": "^task-links"}})}

    await store.update_task(1, TaskPatch.model_validate({"status": "RUNNING"}))
    assert await locks() == {}
    await store.update_task(1, TaskPatch.model_validate({"job-id": "new"}))
    assert await locks() == {"task-links:old": 1, "task-links:new": 1}
    await store.update_task(1, TaskPatch.model_validate({"job-id": None}))
    assert await locks() == {"task-links:old": 1, "task-links:new": 2, "task-links": 1}
    assert "job-id" not in await raw_db.tasks.find_one({"_id": 1})


# ---- property: concurrent additions from two processes ---------------------------------------------------------

NODES = range(1, 7)
JOBS = st.sampled_from(["j1", "j2", "j3", None])
PAIRS = st.tuples(st.sampled_from(NODES), st.sampled_from(NODES)).filter(lambda pair: pair[0] != pair[1])


@st.composite
def races(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Stored links and racing additions: a cycle of which at least two links race (each one alone is safe
    whenever the others have not committed yet), among random other additions."""
    order = draw(st.permutations(list(NODES)))
    cycle = order[: draw(st.integers(min_value=3, max_value=len(order)))]
    cycle_links = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
    racing_cycle_links = draw(st.sets(st.sampled_from(cycle_links), min_size=2))
    stored = [link for link in cycle_links if link not in racing_cycle_links]
    racing = draw(st.permutations([*racing_cycle_links, *draw(st.lists(PAIRS, max_size=4))]))
    return stored, racing


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(jobs=st.lists(JOBS, min_size=len(NODES), max_size=len(NODES)), race=races())
async def test_racing_additions_from_two_stores_never_close_a_cycle(store, other_store, raw_db, jobs, race):
    """Additions race, alternately through two stores. Afterwards the graph has no cycle, every acknowledged
    link is stored, and every refusal is justified by what is stored."""
    stored, racing = race
    await raw_db.tasks.delete_many({})
    await store.create_tasks([task(id=node, job_id=job) for node, job in zip(NODES, jobs, strict=True)])
    for a, b in stored:
        await store.add_nexts(a, [b])
    stores: list[GraphStore] = [store, other_store]
    outcomes = await asyncio.gather(
        *(stores[index % 2].add_nexts(a, [b]) for index, (a, b) in enumerate(racing)), return_exceptions=True
    )
    edges = await assert_link_invariant(raw_db)
    for (a, b), outcome in zip(racing, outcomes, strict=True):
        if isinstance(outcome, InvalidOperation):
            assert reachable(edges, b, a), f"{a}->{b} refused, but {a} is not downstream of {b}"
        else:
            assert not isinstance(outcome, BaseException), outcome
            assert (a, b) in edges
    for a, b in edges:
        assert not reachable(edges - {(a, b)}, b, a), f"stored cycle through {a}->{b}: {sorted(edges)}"
