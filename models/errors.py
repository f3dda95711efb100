"""Typed domain errors of the graph store; each front end maps them to its own status codes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class GraphError(Exception):
    """Base of every error the graph store raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TaskNotFound(GraphError):
    def __init__(self, ids: Iterable[int]) -> None:
        self.ids = sorted(set(ids))
        noun = "task" if len(self.ids) == 1 else "tasks"
        super().__init__(f"{noun} {', '.join(map(str, self.ids))} not found")


class TaskAlreadyExists(GraphError):
    def __init__(self, ids: Iterable[int]) -> None:
        self.ids = sorted(set(ids))
        noun = "task" if len(self.ids) == 1 else "tasks"
        verb = "exists" if len(self.ids) == 1 else "exist"
        super().__init__(f"{noun} {', '.join(map(str, self.ids))} already {verb}")


class InvalidOperation(GraphError):
    """The request is well formed but the graph refuses it (self-link, cycle, duplicate id, bad field)."""


class StorageUnavailable(GraphError):
    """MongoDB could not be reached or did not answer in time."""


class TraversalTooLarge(GraphError):
    """An answer would hold more tasks than the traversal bound allows."""


class IdAllocationFailed(GraphError):
    """Free server-assigned ids could not be found: something keeps writing ids just past the counter."""


class GraphCycle(InvalidOperation):
    """The stored links hold a cycle (other tools may write one), so a question that needs an order has none."""

    def __init__(self, message: str, cycle: Sequence[int]) -> None:
        super().__init__(message)
        self.cycle = list(cycle)


class CursorExpired(GraphError):
    """An event cursor MongoDB cannot resume after: unknown, or older than the oplog still holds."""


class TransactionsUnsupported(Exception):
    """The server is a standalone mongod: multi-document transactions are impossible there.

    A start-up error (the gateway refuses to start), not a request's: no front end ever sees it, so it is no
    GraphError."""


class PreconditionFailed(GraphError):
    """A conditional write found the task changed: its ETag is none of those the caller named (RFC 9110
    section 13.1.1). Nothing was changed."""

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id
        super().__init__(f"task {task_id} has changed: its current ETag is none of those given, nothing was changed")


class TooManySubscriptions(GraphError):
    """A subscription past a bound on open subscriptions (the gateway's, or one connection's): refused, the
    others untouched. The message names the setting."""


class SubscriberTooSlow(GraphError):
    """A subscription whose reader fell behind the live events by more than its buffer holds: ended, so that it
    holds neither the shared stream back nor memory. It resumes with the cursor of the last event it read."""
