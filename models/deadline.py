"""The deadline of every store operation and the translation of the driver's errors into the typed errors the
front ends map (models.errors). The details of an outage (hosts, topology) go to the log, never to the caller."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import pymongo
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from models.errors import InvalidOperation, OperationDeadlinePassed, StorageUnavailable
from models.metrics import MONGODB_FAILURES
from models.tracing import end_abandoned_command, set_current

log = logging.getLogger(__name__)

DEADLINE_GRACE_S = 0.5
"""The driver's own deadline (pymongo.timeout) ends almost every late operation; asyncio's, a little later,
ends what the driver does not watch (waiting for the link queue) and anything the driver overran."""
_DOCUMENT_TOO_LARGE_CODES = frozenset({10334, 17419})
"""BSONObjectTooLarge; an update whose result would be larger than 16 MiB ("Resulting document after update is
larger than 16777216"), a task stored near the limit by a tool and grown by a change or a link."""
_DUPLICATE_KEY = 11000
_TRANSACTION_TOO_LARGE_CODES = frozenset({257, 334})  # TransactionTooLarge, TransactionTooLargeForCache
_REFUSED_UPDATE_CODES = frozenset({2, 14})  # BadValue, TypeMismatch: e.g. $addToSet on a stored non-array
_DOCUMENT_TOO_LARGE_MESSAGE = "a task is larger than MongoDB's 16 MiB document limit: store less in its fields"
_UNAVAILABLE_ERRORS = (ServerSelectionTimeoutError, ConnectionFailure, ExecutionTimeout, WTimeoutError)

_P = ParamSpec("_P")
_T = TypeVar("_T")


class HasDeadline(Protocol):
    @property
    def timeout_s(self) -> float: ...


_S = TypeVar("_S", bound=HasDeadline)


UNAVAILABLE_MESSAGE = "MongoDB unavailable: try again later"
KNOWN_UNAVAILABLE: ContextVar[bool] = ContextVar("known_unavailable", default=False)
"""True while a caller that has just found MongoDB unavailable runs the same reads again only to report it the
way it always does (graphql_schema.compiled): each bounded method then raises StorageUnavailable at once rather
than waiting out its deadline a second time. A context variable: it holds in that task (and the tasks it
starts) only, never in other requests."""


class RequestDeadline:
    """The deadline of one bounded call, as the transaction helper (models.transactions) needs it: whether it
    passed, and asyncio's timeout suspended while a commit's outcome is learned (the commit has a wait of its
    own) and resumed when the commit turned out not to be one."""

    def __init__(self, timeout: asyncio.Timeout, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._ends_at = self._loop.time() + timeout_s
        self._hard_end = timeout.when()

    def remaining(self) -> float:
        """Seconds left before the driver's deadline passes."""
        return self._ends_at - self._loop.time()

    def passed(self) -> bool:
        return self.remaining() <= 0 or self._timeout.expired()

    def suspend(self) -> None:
        """asyncio's timeout no longer cuts the call (only while it has not passed: see `passed`)."""
        self._timeout.reschedule(None)

    def resume(self) -> None:
        self._timeout.reschedule(self._hard_end)


REQUEST_DEADLINE: ContextVar[RequestDeadline | None] = ContextVar("request_deadline", default=None)
"""The deadline of the bounded call running in this task, if any."""


@dataclass
class OperationDeadline:
    """One deadline for every store call of an operation (a GraphQL query or mutation), and whether MongoDB
    already failed one of them: a deadline that passes after that is MongoDB's doing (UNAVAILABLE), one that
    passes while MongoDB answered everything is the operation's own length (OperationDeadlinePassed)."""

    at: float
    """When the operation must be over (the event loop's clock)."""
    timeout_s: float
    mongodb_failed: bool = False


OPERATION_DEADLINE: ContextVar[OperationDeadline | None] = ContextVar("operation_deadline", default=None)
"""The deadline of the operation this task serves, if it has one for all its store calls (graphql_schema.deadline);
None: each call has its own `timeout_s`. A context variable: the tasks the operation starts (DataLoader batches)
share it, other requests never see it."""


@contextlib.contextmanager
def operation_deadline(timeout_s: float) -> Iterator[None]:
    """Every bounded store call inside shares one deadline, `timeout_s` from now: a call started after it has
    passed fails at once, one started before gets only what is left."""
    token = OPERATION_DEADLINE.set(OperationDeadline(asyncio.get_running_loop().time() + timeout_s, timeout_s))
    try:
        yield
    finally:
        OPERATION_DEADLINE.reset(token)


def _time_left(own_timeout_s: float) -> tuple[float, OperationDeadline | None]:
    """The time a store call may take: its own timeout, or less if its operation's deadline comes first; and
    that operation's deadline when it cut the call's own timeout by more than half (a timeout of the call is then
    the operation's). Raises once that deadline has passed (`operation_out_of_time`)."""
    operation = OPERATION_DEADLINE.get()
    if operation is None:
        return own_timeout_s, None
    left = operation.at - asyncio.get_running_loop().time()
    if left <= 0:
        raise operation_out_of_time(operation, TimeoutError())
    return min(own_timeout_s, left), (operation if left < own_timeout_s / 2 else None)


def operation_out_of_time(operation: OperationDeadline, error: BaseException) -> StorageUnavailable:
    """The error of a read its operation's shared deadline cut: one started after it passed, one MongoDB answered
    with its time limit (MaxTimeMSExpired: MongoDB is there, the work is long), or one left less than half its
    own time that got no answer in it. That is OperationDeadlinePassed, unless MongoDB failed one of the
    operation's reads already (what used the time up). A read with its own time and no answer in it is MongoDB's
    failure (UNAVAILABLE). (A MongoDB that stops answering just as a late read starts looks, from here, like a
    read too long for what was left: that read says DEADLINE_EXCEEDED.)"""
    if operation.mongodb_failed:
        return unavailable("the operation's deadline has passed", error)
    set_current("tracking.mongodb.deadline_exceeded", True)
    log.info("an operation's deadline (%gs) passed before its reads were done", operation.timeout_s)
    return OperationDeadlinePassed(
        "the operation's deadline passed before its reads were done: a GraphQL operation has "
        f"TRACKING_MONGODB_TIMEOUT_MS ({operation.timeout_s * 1000:g} ms) for all of them; ask for less in one "
        "operation (fewer aliases or lists, smaller pages), or try again if MongoDB is busy"
    )


def unavailable(what: str, error: BaseException) -> StorageUnavailable:
    """The error the caller gets when MongoDB is unavailable; the log and /metrics learn why (hosts, topology,
    driver error, timeout or not)."""
    timed_out = isinstance(error, TimeoutError | ExecutionTimeout) or getattr(error, "timeout", False)
    MONGODB_FAILURES.labels(kind="timeout" if timed_out else "unavailable").inc()
    if timed_out:
        set_current("tracking.mongodb.deadline_exceeded", True)
    log.warning("MongoDB unavailable: %s: %s", what, error)
    return StorageUnavailable(UNAVAILABLE_MESSAGE)


def is_unavailable(error: PyMongoError) -> bool:
    """Whether the driver's error means MongoDB could not be reached or did not answer in time."""
    return isinstance(error, _UNAVAILABLE_ERRORS) or error.timeout


def is_duplicate_key(error: OperationFailure) -> bool:
    """Whether a write failed (in part) because a unique index already holds the key (E11000)."""
    if isinstance(error, DuplicateKeyError) or error.code == _DUPLICATE_KEY:
        return True
    return _DUPLICATE_KEY in _write_error_codes(error)


def _write_error_codes(error: OperationFailure) -> set[int]:
    """The codes of a bulk write's failed writes (a BulkWriteError's own code says only that some failed)."""
    if not isinstance(error, BulkWriteError):
        return set()
    return {item.get("code") for item in error.details.get("writeErrors", []) if isinstance(item.get("code"), int)}


def domain_error(error: PyMongoError | DocumentTooLarge) -> InvalidOperation | StorageUnavailable | None:
    """The typed error a driver error becomes, or None for one no caller can act on (it stays a 500)."""
    if isinstance(error, DocumentTooLarge):
        return InvalidOperation(_DOCUMENT_TOO_LARGE_MESSAGE)  # a bson error, raised before anything is sent
    if isinstance(error, OperationFailure):
        if error.code in _DOCUMENT_TOO_LARGE_CODES or _write_error_codes(error) & _DOCUMENT_TOO_LARGE_CODES:
            return InvalidOperation(_DOCUMENT_TOO_LARGE_MESSAGE)
        if error.code in _TRANSACTION_TOO_LARGE_CODES:
            return InvalidOperation("the change is too large for one MongoDB transaction: send it in smaller requests")
        if error.code in _REFUSED_UPDATE_CODES:
            message = (error.details or {}).get("errmsg", "")
            return InvalidOperation(f"MongoDB refused the change: {message}")
    if is_unavailable(error):
        return unavailable("operation failed", error)
    return None


def _mongodb_failed() -> None:
    """MongoDB failed a read of the operation this task serves (if any): its deadline passing later is MongoDB's."""
    operation = OPERATION_DEADLINE.get()
    if operation is not None:
        operation.mongodb_failed = True


def bounded(
    method: Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """The method finishes within its owner's `timeout_s` (TRACKING_MONGODB_TIMEOUT_MS), waits and transaction
    retries included, or by its operation's deadline if that comes first (`operation_deadline`), else raises
    StorageUnavailable (a transaction's commit, once sent, is out of that deadline: models.transactions); the
    driver's errors become typed errors (`domain_error`):
    StorageUnavailable for an outage, InvalidOperation for a document or transaction MongoDB cannot hold."""

    async def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if KNOWN_UNAVAILABLE.get():
            raise StorageUnavailable(UNAVAILABLE_MESSAGE)
        timeout_s, cut_by = _time_left(self.timeout_s)
        set_current("tracking.mongodb.deadline_ms", round(timeout_s * 1000))  # whole ms: what is left, not 9992.99…
        try:
            async with asyncio.timeout(timeout_s + DEADLINE_GRACE_S) as timeout:
                deadline = REQUEST_DEADLINE.set(RequestDeadline(timeout, timeout_s))
                try:
                    with pymongo.timeout(timeout_s):
                        return await method(self, *args, **kwargs)
                finally:
                    REQUEST_DEADLINE.reset(deadline)
        except TimeoutError as error:
            end_abandoned_command()
            if cut_by is not None:
                raise operation_out_of_time(cut_by, error) from None
            _mongodb_failed()
            raise unavailable(f"no answer within {timeout_s:g}s", error) from None
        except asyncio.CancelledError:
            end_abandoned_command()
            raise
        except (PyMongoError, DocumentTooLarge) as error:
            operation = OPERATION_DEADLINE.get() if isinstance(error, ExecutionTimeout) else cut_by
            if operation is not None and isinstance(error, PyMongoError) and error.timeout:
                raise operation_out_of_time(operation, error) from None
            typed = domain_error(error)
            if isinstance(typed, StorageUnavailable):
                _mongodb_failed()
            if typed is None:
                raise
            raise typed from None

    functools.update_wrapper(wrapper, method)  # a statement: mypy keeps wrapper's own, precise signature
    return wrapper
