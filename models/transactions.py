"""One majority transaction from start to its known outcome, and the session's end only after it.

The rules (docs/decisions/transaction-outcomes.md says why):

- The request's deadline (models.deadline) bounds the work *before* the commit: a try that fails, or is cut by
  the deadline or a cancelled request, is aborted and nothing is stored. A try that fails with MongoDB's
  TransientTransactionError label (a write conflict) is run again while the deadline allows, as PyMongo's
  `with_transaction` does.
- Once commitTransaction is sent, the request's deadline no longer applies: the commit's outcome is learned
  under a wait of its own (TRACKING_COMMIT_OUTCOME_WAIT_MS), retrying commitTransaction (idempotent on the
  server) while its error carries the UnknownTransactionCommitResult label, as the transactions specification
  says. Committed: the caller gets its answer. Not committed (TransientTransactionError, or any other error):
  a refusal, and nothing changed. Still unknown when the wait ends: CommitOutcomeUnknown.
- The session is ended only once its transaction is committed or aborted. The commit and the abort run in a
  task of their own, out of the request's deadline (a fresh context) and shielded: a request cancelled meanwhile
  answers at once, and the task still finishes the transaction and then ends the session.
- An abort after an interrupted operation (the deadline or a cancellation cut it while MongoDB may still be
  running it) first kills the session's operations (killSessions), so the abort does not wait for an insert of
  thousands of tasks to finish; a plain abort would, and under its own deadline could give up while MongoDB
  keeps the transaction for its whole lifetime (60 s). It is then superseded: the session's next transaction
  number is sent once MongoDB answers, so that a command of the request MongoDB had not read yet (a server that
  froze) cannot open the aborted transaction again afterwards (`_supersede`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pymongo
from pymongo import ReadPreference
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ExecutionTimeout, InvalidOperation, PyMongoError

from models.connection import MAJORITY_READS, MAJORITY_WRITES
from models.deadline import REQUEST_DEADLINE, unavailable
from models.errors import CommitOutcomeUnknown
from models.stored_task import Collection
from models.tracing import context_keeping_trace

ABORT_TIMEOUT_S = 15.0
"""How long aborting a failed transaction may take, apart from the request's deadline (which may be what failed
it). Generous: a request is answered by its own deadline meanwhile, and a loaded MongoDB may take seconds to stop
a killed insert of thousands of tasks; an abort given up leaves the transaction to MongoDB's lifetime (60 s)."""
SUPERSEDE_WITHIN_S = 120.0
"""How long an interrupted transaction's supersession (`_supersede`) waits for MongoDB to answer: twice MongoDB's
transaction lifetime."""
SUPERSEDE_BACKOFF_MAX_S = 2.0
UNBOUNDED_RETRIES_S = 120.0
"""How long a transaction without a request deadline (maintenance: restore, purge, repair) is run again after
transient errors: PyMongo's `with_transaction` limit."""
_BACKOFF_INITIAL_S = 0.005
_BACKOFF_MAX_S = 0.5
_TRANSIENT = "TransientTransactionError"
_UNKNOWN_COMMIT = "UnknownTransactionCommitResult"
_T = TypeVar("_T")
log = logging.getLogger(__name__)
_FINISHING: set[asyncio.Task[None]] = set()
"""Commits and aborts a cancelled request left running: the loop keeps only weak references to tasks."""

Work = Callable[[AsyncClientSession], Awaitable[_T]]


class _NotCommitted(Exception):
    """The commit failed for good (nothing stored); `error` says why, `transient` whether to run it again."""

    def __init__(self, error: PyMongoError) -> None:
        super().__init__(str(error))
        self.error = error
        self.transient = error.has_error_label(_TRANSIENT)


async def run_transaction(tasks: Collection, work: Work[_T], commit_wait_s: float, check: Callable[[], str]) -> _T:
    """What `work` returns, its writes committed in one majority transaction on the primary (module rules), on
    the client of `tasks` (the collection an interrupted transaction's supersession reads).
    Raises what `work` raises (the transaction aborted), StorageUnavailable when the deadline passed before the
    commit or the commit failed, CommitOutcomeUnknown (naming `check()`, how the caller can learn the outcome)
    when the commit was sent and no answer came within `commit_wait_s`. Each try has a session of its own,
    ended by the task that commits or aborts it."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        session = tasks.database.client.start_session()
        try:
            await session.start_transaction(MAJORITY_READS, MAJORITY_WRITES, ReadPreference.PRIMARY)
            result = await work(session)
            _refuse_past_deadline()
        except asyncio.CancelledError:
            _finish_in_background(session, tasks, commit=False, interrupted=True)
            raise
        except BaseException as error:
            await _settle(session, tasks, commit=False, interrupted=_interrupted(error))
            if not _transient(error):
                raise
            if await _backoff(attempt, started):
                continue
            raise unavailable("write conflicts until the deadline", error) from None
        try:
            with _RequestDeadlineSuspended():
                await _settle(session, tasks, commit=True, commit_wait_s=commit_wait_s)
        except _NotCommitted as failed:
            if failed.transient and _deadline_left() and await _backoff(attempt, started):
                continue
            raise unavailable("the commit failed", failed.error) from None
        except _OutcomeUnknown:
            raise CommitOutcomeUnknown(commit_wait_s, check()) from None
        return result


class _OutcomeUnknown(Exception):
    """The commit was sent and its outcome could not be learned within the wait."""


def _refuse_past_deadline() -> None:
    """The request's deadline bounds the work before the commit: a transaction whose work ended past it is
    aborted rather than committed (the caller may have been answered already, or is about to be)."""
    deadline = REQUEST_DEADLINE.get()
    if deadline is not None and deadline.passed():
        raise ExecutionTimeout("the request's deadline passed before the commit", 50, {"codeName": "MaxTimeMSExpired"})


def _deadline_left() -> bool:
    deadline = REQUEST_DEADLINE.get()
    return deadline is None or not deadline.passed()


class _RequestDeadlineSuspended:
    """Around the commit: the request's deadline no longer cuts the work (the commit has its own wait); on an
    error the commit says is no commit, the deadline holds again for another try."""

    def __enter__(self) -> None:
        deadline = REQUEST_DEADLINE.get()
        self._deadline = deadline
        if deadline is not None:
            deadline.suspend()

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if self._deadline is not None and isinstance(error, _NotCommitted):
            self._deadline.resume()


def _interrupted(error: BaseException) -> bool:
    """Whether an operation may still run in MongoDB after `error` (a deadline or a cancellation cut it)."""
    if isinstance(error, asyncio.CancelledError | TimeoutError):
        return True
    return isinstance(error, PyMongoError) and error.timeout


def _transient(error: BaseException) -> bool:
    return isinstance(error, PyMongoError) and error.has_error_label(_TRANSIENT)


async def _backoff(attempt: int, started: float) -> bool:
    """Wait before running the transaction again (PyMongo's jittered back-off); False when there is no time
    left for another try."""
    pause = random.random() * min(_BACKOFF_INITIAL_S * 1.5**attempt, _BACKOFF_MAX_S)  # noqa: S311 - jitter
    deadline = REQUEST_DEADLINE.get()
    if deadline is not None:
        if deadline.remaining() <= pause:
            return False
    elif time.monotonic() + pause - started > UNBOUNDED_RETRIES_S:
        return False
    await asyncio.sleep(pause)
    return True


async def _settle(
    session: AsyncClientSession,
    tasks: Collection,
    *,
    commit: bool,
    interrupted: bool = False,
    commit_wait_s: float = 0,
) -> None:
    """Commit or abort in a task of its own (`_finish`), waited for here; should this request be cancelled
    meanwhile, the task goes on all the same, and ends the session."""
    await asyncio.shield(
        _finish_in_background(session, tasks, commit=commit, interrupted=interrupted, commit_wait_s=commit_wait_s)
    )


def _finish_in_background(
    session: AsyncClientSession, tasks: Collection, *, commit: bool, interrupted: bool, commit_wait_s: float = 0
) -> asyncio.Task[None]:
    """The task finishing the transaction: out of the request's deadline."""
    return _in_background(_finish(session, tasks, commit=commit, interrupted=interrupted, commit_wait_s=commit_wait_s))


async def finishing(within_s: float) -> None:
    """Until the commits, aborts and supersessions running in the background have ended, `within_s` at most: a
    store closing its client would cut them (an abort cut leaves its transaction to MongoDB's lifetime)."""
    if _FINISHING and within_s > 0:
        await asyncio.wait(set(_FINISHING), timeout=within_s)


def _in_background(finishing: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """`finishing` in a task of its own: a fresh context (keeping only the request's trace), strongly held."""
    task = asyncio.get_running_loop().create_task(finishing, context=context_keeping_trace())
    _FINISHING.add(task)
    task.add_done_callback(_FINISHING.discard)
    return task


async def _finish(
    session: AsyncClientSession, tasks: Collection, *, commit: bool, interrupted: bool, commit_wait_s: float
) -> None:
    """Commit (learning the outcome) or abort, then end the session: never before. After an interrupted
    operation the aborted transaction is superseded too, in a task of its own that ends the session then
    (`_supersede`): the caller waits for the abort only."""
    superseding = False
    try:
        if commit:
            await _commit(session, commit_wait_s)
        else:
            await _abort(session, interrupted)
            if interrupted:
                _in_background(_superseded_then_ended(session, tasks))
                superseding = True
    finally:
        if not superseding:
            await session.end_session()


async def _superseded_then_ended(session: AsyncClientSession, tasks: Collection) -> None:
    try:
        await _supersede(session, tasks)
    finally:
        await session.end_session()


async def _commit(session: AsyncClientSession, wait_s: float) -> None:
    """commitTransaction until MongoDB says committed (return), not committed (_NotCommitted) or `wait_s`
    passes without an answer (_OutcomeUnknown). Retrying is safe: a commit MongoDB already applied answers
    success again (PyMongo sends the retries with w: majority)."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        left = wait_s - (time.monotonic() - started)
        try:
            if left <= 0:
                log.warning("the outcome of a commit is unknown after %gs", wait_s)
                raise _OutcomeUnknown()
            async with asyncio.timeout(left + 0.5):
                with pymongo.timeout(left):
                    await session.commit_transaction()
            return
        except TimeoutError as error:
            log.warning("the outcome of a commit is unknown after %gs: no answer", wait_s)
            raise _OutcomeUnknown() from error
        except PyMongoError as error:
            if not error.has_error_label(_UNKNOWN_COMMIT):
                raise _NotCommitted(error) from error
            if error.timeout or time.monotonic() - started >= wait_s:
                log.warning("the outcome of a commit is unknown after %gs: %s", wait_s, error)
                raise _OutcomeUnknown() from error
            log.warning("the outcome of a commit is unknown (%s): asking again", error)
            await asyncio.sleep(min(_BACKOFF_INITIAL_S * 2**attempt, _BACKOFF_MAX_S))


async def _supersede(session: AsyncClientSession, tasks: Collection) -> None:
    """After an interrupted operation, whatever its abort did: a command MongoDB has not read yet (sent to a server
    that froze, or that a network held back) may still open the transaction later, and MongoDB would keep it,
    with its locks and the idempotency key its writes took, for its whole lifetime (60 s): retries of the
    request were told it was still in progress, and index builds waited. A newer transaction number on the same
    session, sent once MongoDB answers (a retryable write that changes nothing), supersedes it whichever comes
    first: MongoDB aborts the older transaction, or refuses it later as too old (TransactionTooOld). Tried until
    MongoDB answers, for SUPERSEDE_WITHIN_S at most (past that MongoDB has ended anything a late command opened)."""
    ends = time.monotonic() + SUPERSEDE_WITHIN_S
    attempt = 0
    while True:
        attempt += 1
        try:
            with pymongo.timeout(ABORT_TIMEOUT_S):
                if session.in_transaction:  # an abort or a try given up: ended (PyMongo ignores its errors)
                    await session.abort_transaction()
                # A retryable write that changes nothing: it carries the session's next transaction number, and
                # leaves nothing open should the process end meanwhile (a transaction started to supersede
                # would).
                await tasks.update_one({"_id": None}, {"$set": {}}, session=session)
            return
        except InvalidOperation:  # the client is closed: the process is ending
            return
        except PyMongoError as error:
            if time.monotonic() >= ends:
                log.warning("a transaction interrupted by MongoDB not answering could not be superseded: %s", error)
                return
        await asyncio.sleep(min(_BACKOFF_INITIAL_S * 2**attempt, SUPERSEDE_BACKOFF_MAX_S))


async def _abort(session: AsyncClientSession, interrupted: bool) -> None:
    """Abort the transaction under a deadline of its own (ABORT_TIMEOUT_S); after an interrupted operation,
    kill the session's operations first (module rules). Errors are logged: the transaction's own error is what
    the caller must see."""
    try:
        with pymongo.timeout(ABORT_TIMEOUT_S):
            if interrupted and session.session_id is not None:
                await session.client.admin.command({"killSessions": [session.session_id]})
            if session.in_transaction:
                await session.abort_transaction()
    except Exception as error:
        log.warning("aborting a failed transaction: %s", error)
