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


class JobOutsideScope(GraphError):
    """A create, or a move of a task, into a job outside the jobs the caller may change (its job scope). Reads
    and changes of tasks outside the scope are TaskNotFound instead: their existence is not revealed."""


class InvalidOperation(GraphError):
    """The request is well formed but the graph refuses it (self-link, cycle, duplicate id, bad field)."""


class StorageUnavailable(GraphError):
    """MongoDB could not be reached or did not answer in time."""


class OperationDeadlinePassed(StorageUnavailable):
    """The deadline a whole operation shares (a GraphQL query or mutation: models.deadline.operation_deadline)
    passed before this read was done: the operation asks for more than one deadline allows, or MongoDB is slow.
    A StorageUnavailable (nothing of it was read), told apart so that a caller is not sent to look at MongoDB."""


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
    """A request's precondition (RFC 9110 section 13.1) is false: If-Match named none of the current versions, or
    If-None-Match named one (or `*`, and there is one). Nothing was changed. `current_version` is the task's
    version as the evaluation read it (models.conditions.version_of: its ETag goes with the answer), when there is
    one."""

    current_version: str | None = None

    def __init__(self, subject: str, field: str = "If-Match", current_version: str | None = None) -> None:
        self.subject = subject
        self.field = field
        self.current_version = current_version
        if field == "If-Match":
            message = f"{subject} has changed: its current ETag is none of those given"
        else:
            message = f"{subject} has a version If-None-Match names (or If-None-Match is * and it exists)"
        super().__init__(f"{message}, nothing was changed")


class ChangeUnread(GraphError):
    """The change was committed, and a read its answer needs failed after (MongoDB unavailable): not a refusal.
    Raised by a front end that reads after the write (the linked tasks an answer shows)."""

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"the change was made, but its answer could not be read from MongoDB (unavailable): read {subject} "
            "again to see it"
        )


class CommitOutcomeUnknown(GraphError):
    """The change was sent to MongoDB for commit and no answer said whether it committed within the commit's
    own wait (TRACKING_COMMIT_OUTCOME_WAIT_MS): it may or may not be stored. Not a refusal: `check` says how the
    caller can learn which (models.transactions)."""

    def __init__(self, wait_s: float, check: str) -> None:
        self.check = check
        super().__init__(
            f"outcome unknown: the change was sent to MongoDB for commit, and whether it was stored could not be "
            f"learned within {wait_s:g}s (TRACKING_COMMIT_OUTCOME_WAIT_MS), so it may or may not have been "
            f"stored: {check}"
        )


class IdempotencyKeyReused(GraphError):
    """An idempotency key the caller already used for a create with other content."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was already used for a create with other tasks: use a new key for a new create"
        )


class IdempotencyKeyInFlight(GraphError):
    """A create with this idempotency key (the caller's) is still running: its answer is not known yet."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"a create with idempotency key {key!r} is still in progress: send the request again once it has "
            "answered, with the same key, to get its answer"
        )


class TooManySubscriptions(GraphError):
    """A subscription past a bound on open subscriptions (the gateway's, or one connection's): refused, the
    others untouched. The message names the setting."""


class SubscriberTooSlow(GraphError):
    """A subscription whose reader fell behind the live events by more than its buffer holds: ended, so that it
    holds neither the shared stream back nor memory. It resumes with the cursor of the last event it read."""
