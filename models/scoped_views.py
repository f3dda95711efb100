"""The graph store as a caller limited to some jobs sees it (models.scopes): a view sharing the store's
client, parts and link queues, whose reads and write checks carry the caller's job range."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Self

from models.coalesce import CoalescedReads
from models.errors import JobOutsideScope
from models.scopes import JobScope, in_scope
from models.storage import Storage

SCOPED_STORES = 1024
"""Most scoped views of a store kept at once (one per distinct set of job prefixes: a token's, a JWT's claim)."""
_PARTS = ("_ids", "_records", "_links", "_walks", "_jobs")
"""The store's parts that read or write through its Storage: each view has them over its scoped Storage."""


class ScopedViews:
    """What makes a GraphStore narrowable to a job scope (`scoped`)."""

    _storage: Storage
    _scoped: dict[tuple[str, ...], Any]
    tracer: Any

    def scoped(self, scope: JobScope) -> Self:
        """This store as a caller limited to the jobs of `scope` sees it: tasks, jobs, walks, histories and
        events of other jobs are not found, and creates or moves into them are refused with JobOutsideScope.
        Itself for no scope. One view per scope, kept (at most SCOPED_STORES of them)."""
        if scope is None:
            return self
        narrowed = self._scoped.get(scope)
        if narrowed is None:
            if len(self._scoped) >= SCOPED_STORES:
                self._scoped.clear()
            narrowed = self._scoped[scope] = self._narrowed(scope)
        return narrowed

    def _narrowed(self, scope: JobScope) -> Self:
        narrowed = copy.copy(self)
        narrowed._storage = self._storage.scoped(scope)
        for part in _PARTS:  # the same parts (the link queues included), reading through the scoped storage
            scoped_part = copy.copy(getattr(self, part))
            scoped_part._storage = narrowed._storage
            setattr(narrowed, part, scoped_part)
        # Coalesced reads are never shared across scopes: one caller's read must not answer another's.
        narrowed._single_reads = CoalescedReads(narrowed.get_tasks, self.tracer)  # type: ignore[attr-defined]
        return narrowed

    def _refuse_outside(self, job_ids: Iterable[object]) -> None:
        """JobOutsideScope for a create or move into a job outside this store's scope (or into no job)."""
        scope = self._storage.scope
        outside = sorted({repr(job_id) for job_id in job_ids if not in_scope(job_id, scope)})
        if outside:
            raise JobOutsideScope(
                f"job-id {', '.join(outside)} is outside the jobs this caller may change "
                f"(job ids starting with {', '.join(map(repr, scope or ()))})"
            )
