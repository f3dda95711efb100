"""The compiled GraphQL path answers generated selections (hypothesis: fields, aliases, fragments, walks with their
arguments, history pages) byte for byte as graphql-core does, on the job of tests/graphql_schema/conftest.py."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphql_schema.compiled_plan import TASK_FIELDS
from tests.graphql_schema.compiled_pair import (
    JOB,
    same_answer,
)

SCALARS = sorted(TASK_FIELDS)


@st.composite
def selections(draw: st.DrawFn) -> str:
    """A job query: its tasks (all, roots or filtered) with some fields, each maybe aliased, maybe through a
    fragment; maybe edges, counts, and tasks with their walks."""
    fields = draw(st.lists(st.sampled_from([*SCALARS, "__typename"]), min_size=1, max_size=8, unique=True))
    parts = [f"a{index}: {name}" if draw(st.booleans()) else name for index, name in enumerate(fields)]
    split = draw(st.integers(0, len(parts)))
    inline, spread = parts[:split], parts[split:]
    wrap = draw(st.sampled_from(["plain", "inline", "fragment"]))
    tasks = draw(st.sampled_from(["tasks", "roots", "tasks(root: false)", 'tasks(status: ["DONE", "FAILED"])']))
    tasks = draw(st.sampled_from([tasks, 'tasks(statusNot: ["DONE"], type: "task")', 'tasks(type: "other")']))
    if wrap == "inline":
        tasks = f"{tasks} {{ {' '.join(inline)} ... on Task {{ {' '.join(spread) or 'id'} }} }}"
    elif wrap == "fragment":
        tasks = f"{tasks} {{ {' '.join(inline)} ...F }}"
    else:
        tasks = f"{tasks} {{ {' '.join(parts)} }}"
    extras = draw(
        st.lists(
            st.sampled_from(
                [
                    "edges { to from }",
                    "statusCounts { count status }",
                    "taskCount",
                    "t: tasks { id nexts { id } }",
                    "h: tasks { id history { at kind changedFields status cursor } }",
                    "b: tasks { id blockedBy { id status } }",
                    "bt: tasks { id blockedBy(transitive: true) { id } }",
                    "bh: roots { id blockedBy { id history { kind at } } b2: blockedBy { status } }",
                    'hb: tasks(statusNot: ["DONE"]) { history { __typename status } blockedBy { id etag } }',
                    "r: roots { id descendants(maxDepth: 2) { id } ancestors { id } }",
                ]
            )
        )
    )
    job = f'job(id: "{JOB}") {{ {tasks} {" ".join(dict.fromkeys(extras))} }}'
    fragment = f" fragment F on Task {{ {' '.join(spread) or 'id'} }}" if wrap == "fragment" else ""
    return f"query {{ {job} }}{fragment}"


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(query=selections())
async def test_generated_selections_answer_as_graphql_core(clients, query) -> None:
    body, compiled = await same_answer(clients, query)
    assert compiled
    assert b'"errors"' not in body


WALK_FIELDS = ["nexts", "previous", "descendants", "ancestors", "blockedBy"]


@st.composite
def walk_arguments(draw: st.DrawFn, field: str) -> str:
    """Arguments a walk field takes, some of them, with values that keep some tasks and some that keep none."""
    if field == "blockedBy":
        return draw(st.sampled_from(["", "(transitive: true)", "(transitive: false)"]))
    chosen = []
    if field in ("descendants", "ancestors") and draw(st.booleans()):
        chosen.append(f"maxDepth: {draw(st.integers(0, 4))}")
    if draw(st.booleans()):
        chosen.append(f"status: {json.dumps(draw(st.lists(st.sampled_from(['DONE', 'FAILED', 'NOPE']), max_size=2)))}")
    if draw(st.booleans()):
        chosen.append(f"statusNot: {json.dumps(draw(st.lists(st.sampled_from(['DONE', 'READY']), max_size=2)))}")
    if draw(st.booleans()):
        chosen.append(f"type: {json.dumps(draw(st.sampled_from(['task', 'other'])))}")
    return f"({', '.join(chosen)})" if chosen else ""


CHANGE_FIELDS = ["cursor", "at", "kind", "changedFields", "status", "__typename"]


@st.composite
def history_selection(draw: st.DrawFn) -> str:
    """Task.history with some of a change's fields, maybe aliased, maybe a page shorter than the history (the
    tasks have up to 3 changes)."""
    fields = draw(st.lists(st.sampled_from(CHANGE_FIELDS), min_size=1, max_size=4, unique=True))
    page = draw(st.sampled_from(["", "(last: 1)", "(last: 2)", "(last: 50)"]))
    return (
        f"history{page} {{ "
        + " ".join(f"c{i}: {name}" if draw(st.booleans()) else name for i, name in enumerate(fields))
        + " }"
    )


@st.composite
def task_selection(draw: st.DrawFn, depth: int) -> str:
    """Some scalar fields (maybe aliased), maybe the task's history and, while `depth` lasts, walks with their own
    selections."""
    fields = draw(st.lists(st.sampled_from([*SCALARS, "__typename", "etag"]), min_size=1, max_size=4, unique=True))
    parts = [f"s{index}: {name}" if draw(st.booleans()) else name for index, name in enumerate(fields)]
    if draw(st.booleans()):
        parts.append(f"h: {draw(history_selection())}")
    if depth:
        walks = draw(st.lists(st.sampled_from(WALK_FIELDS), max_size=2))
        for index, walk in enumerate(walks):
            parts.append(f"w{index}: {walk}{draw(walk_arguments(walk))} {draw(task_selection(depth - 1))}")
    return f"{{ {' '.join(parts)} }}"


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(task_id=st.integers(1, 31), selection=task_selection(2))
async def test_generated_walks_answer_as_graphql_core(clients, task_id, selection) -> None:
    """A task (or none: 31 does not exist) with generated scalar fields, history and walks (blockedBy plain and
    transitive among them), nested two deep."""
    body, compiled = await same_answer(clients, f'{{ task(id: "{task_id}") {selection} }}')
    assert b'"errors"' not in body
    assert compiled
