"""An idempotency key's fingerprint (models.idempotency.fingerprint) compares what two creates would store: equal
exactly when they would store the same tasks, whatever defaults a body sends or leaves out, its field order, its
nulls and the server-owned fields it sends. Pure code, no MongoDB: bodies go through the REST parsing
(models.task.created_tasks_of) or the model (TaskCreate), then models.creation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from models import TaskCreate
from models.creation import new_documents, plan_creation
from models.idempotency import fingerprint
from models.task import DEFAULT_TYPE, created_tasks_of

Body = list[dict[str, Any]]
NOW = datetime(2031, 1, 1, tzinfo=UTC)

TEXT = st.sampled_from(["a", "b"])
OPTIONAL_FIELDS = {
    "name": TEXT,
    "status": st.sampled_from(["READY", "DONE"]),
    "job-id": st.sampled_from(["j1", "j2"]),
    "type": st.sampled_from([DEFAULT_TYPE, "execution-task"]),
    "root": st.booleans(),
    "number-of-retries": st.integers(0, 1),
    "id": st.sampled_from([1, 2, 3]),
}


@st.composite
def tasks(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """One task of a body, with few possible values so that two drawn bodies are often equivalent."""
    task = {name: draw(values) for name, values in OPTIONAL_FIELDS.items() if draw(st.booleans())}
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        task["nexts"] = {"tasks": draw(st.lists(tasks(depth + 1), min_size=1, max_size=2))}
    return task


BODIES = st.lists(tasks(), min_size=1, max_size=3)


def _plan(body: Body) -> Any:
    return plan_creation(created_tasks_of({"tasks": body}))


def _stored(body: Body) -> list[dict[str, Any]]:
    """What the create would store, its server-assigned ids fixed by position (far from the given ones)."""
    plan = _plan(body)
    return new_documents(plan, [item.id or 1_000_000 + index for index, item in enumerate(plan)], NOW)


@st.composite
def restated(draw: st.DrawFn, body: Body, parent: dict[str, Any] | None = None) -> Body:
    """`body` as another client would send the same create: each default it leaves out sent or not (`type`,
    `root`, a nested task's inherited `job-id`), nulls for absent fields, the server-owned timestamps, an empty
    `nexts`, and the fields in another order."""
    out: Body = []
    for task in body:
        copy = {name: value for name, value in task.items() if name != "nexts"}
        defaults: dict[str, Any] = {"type": DEFAULT_TYPE, "root": parent is None}
        inherited = None if parent is None else parent.get("job-id", parent.get("_inherited"))
        if inherited is not None:
            defaults["job-id"] = inherited
        for name, value in defaults.items():
            if name not in copy and draw(st.booleans()):
                copy[name] = value
        for name in OPTIONAL_FIELDS:
            if name not in copy and name not in defaults and draw(st.integers(0, 3)) == 0:
                copy[name] = None
        if draw(st.integers(0, 3)) == 0:
            copy["creation-timestamp"] = "2020-01-01T00:00:00.000Z"
        children = task.get("nexts", {}).get("tasks", [])
        effective = {**task, "_inherited": task.get("job-id", inherited)}
        if children:
            copy["nexts"] = {"tasks": draw(restated(children, effective))}
        elif draw(st.integers(0, 3)) == 0:
            copy["nexts"] = {"tasks": []}
        out.append(dict(draw(st.permutations(list(copy.items())))))
    return out


@given(st.data(), BODIES)
def test_the_same_create_sent_differently_has_one_fingerprint(data: st.DataObject, body: Body) -> None:
    other = data.draw(restated(body))
    assert _stored(other) == _stored(body)
    assert fingerprint(_plan(other)) == fingerprint(_plan(body))


@given(BODIES, BODIES)
def test_two_creates_share_a_fingerprint_exactly_when_they_store_the_same_tasks(one: Body, two: Body) -> None:
    same_ids = [item.id for item in _plan(one)] == [item.id for item in _plan(two)]
    stores_the_same = same_ids and _stored(one) == _stored(two)
    assert (fingerprint(_plan(one)) == fingerprint(_plan(two))) == stores_the_same


def test_the_default_type_sent_or_not_is_the_same_create_as_a_model_too() -> None:
    """GraphQL and the store's callers plan from TaskCreate models: the same rule."""
    bare = TaskCreate.model_validate({"name": "a", "nexts": {"tasks": [{"name": "b"}]}, "job-id": "j"})
    explicit = TaskCreate.model_validate(
        {"type": "task", "root": True, "name": "a", "job-id": "j", "nexts": {"tasks": [{"name": "b", "job-id": "j"}]}}
    )
    assert fingerprint(plan_creation([bare])) == fingerprint(plan_creation([explicit]))
    execution = TaskCreate.model_validate({"type": "execution-task", "name": "a", "job-id": "j"})
    task = TaskCreate.model_validate({"name": "a", "job-id": "j"})
    assert fingerprint(plan_creation([execution])) != fingerprint(plan_creation([task]))
