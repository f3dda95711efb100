"""Strawberry's extensions runner, made cheap per streamed result.

On every result of a stream (each event of each subscription), Strawberry's runner asks every extension of the
operation for its results and looks up every extension's `on_stream_result` hook, wrapping the hooks it finds
anew. The schema has over a dozen extensions and nearly none of them defines either, so with thousands of
subscriptions that lookup was a large part of the gateway's work per delivered event. This runner finds the
extensions that define each once per operation; what they run, and in what order, is unchanged.
"""

from __future__ import annotations

from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import StreamResultContextManager, WrappedHook
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.utils.await_maybe import await_maybe


class LeanExtensionsRunner(SchemaExtensionsRunner):
    """A runner that visits, per streamed result, only the extensions that override `get_results` or
    `on_stream_result` (found at the first result: the operation's extensions are fixed by then)."""

    _with_results: list[SchemaExtension] | None = None
    _stream_hooks: list[WrappedHook] | None = None

    def on_stream_result(self, result: Any) -> StreamResultContextManager:
        if self._stream_hooks is None:
            self._stream_hooks = StreamResultContextManager(self.extensions, result).hooks
        return _FoundHooks(self._stream_hooks, result)

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        if self._with_results is None:
            self._with_results = [
                extension
                for extension in self.extensions
                if type(extension).get_results is not SchemaExtension.get_results
            ]
        data: dict[str, Any] = {}
        for extension in self._with_results:
            data.update(await await_maybe(extension.get_results()))
        data.update(ctx.extensions_results)
        return data


class _FoundHooks(StreamResultContextManager):
    """Strawberry's context manager around one streamed result, with hooks found before (each hook is a factory
    of a fresh context manager per result, so the same list serves every result)."""

    def __init__(self, hooks: list[WrappedHook], result: Any) -> None:  # the base would look the hooks up again
        self.hooks = hooks
        self.result = result
