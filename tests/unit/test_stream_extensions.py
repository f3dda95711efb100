"""The extensions runner that looks each hook up once per operation (graphql_schema.stream_extensions) runs the
same hooks as Strawberry's on every streamed result, in order, and gathers the same extension results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionResult

from graphql_schema.stream_extensions import LeanExtensionsRunner


class Plain(SchemaExtension):
    """Defines neither hook: a runner skips it."""


class Seeing(SchemaExtension):
    def __init__(self, name: str, seen: list[tuple[str, str, Any]]) -> None:
        self.name, self.seen = name, seen

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self.seen.append((self.name, "before", result.data))
        yield
        self.seen.append((self.name, "after", result.data))

    def get_results(self) -> dict[str, Any]:
        return {self.name: len(self.seen)}


class Async(SchemaExtension):
    def __init__(self, seen: list[tuple[str, str, Any]]) -> None:
        self.seen = seen

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:
        self.seen.append(("async", "before", result.data))
        yield

    async def get_results(self) -> dict[str, Any]:
        return {"async": True}


async def run(runner_class: type[SchemaExtensionsRunner]) -> tuple[list[tuple[str, str, Any]], list[dict[str, Any]]]:
    seen: list[tuple[str, str, Any]] = []
    extensions = [Plain(), Seeing("a", seen), Plain(), Async(seen), Seeing("b", seen)]
    context: Any = type("Context", (), {"extensions_results": {"own": 1}})()
    runner = runner_class(execution_context=context, extensions=extensions)
    results = []
    for n in range(3):
        result = ExecutionResult(data={"n": n}, errors=None)
        async with runner.on_stream_result(result):
            seen.append(("body", "", n))
        results.append(await runner.get_extensions_results(context))
    return seen, results


async def test_every_result_runs_the_same_hooks_and_gathers_the_same_results_as_strawberry_s_runner() -> None:
    lean, strawberry = await run(LeanExtensionsRunner), await run(SchemaExtensionsRunner)
    assert lean == strawberry
    seen, results = lean
    assert seen[:6] == [
        ("a", "before", {"n": 0}),
        ("async", "before", {"n": 0}),
        ("b", "before", {"n": 0}),
        ("body", "", 0),
        ("b", "after", {"n": 0}),
        ("a", "after", {"n": 0}),
    ]
    assert len(seen) == 18
    assert results[2] == {"a": 18, "async": True, "b": 18, "own": 1}
