"""A `taskEvents` subscription over graphql-transport-ws sends its events itself, from its resolver.

Strawberry serves a subscription as a stack of generators: the protocol handler's loop over Strawberry's
stream, which loops over graphql-core's response stream, which loops over the resolver. Every event went up
that whole stack, and each layer then awaited the next event holding what it had just handled (the result, its
payload, the per-event executor, a fresh awaitable per layer). With thousands of subscriptions that waiting state,
renewed at every delivery and kept until the next one seconds later, was most of what the garbage collector's
middle generation walked, with the event loop stopped (docs/decisions/subscription-fanout.md).

Here the resolver does what that stack did for an answer with data and no error, the case of nearly every event:
it runs the per-event execution exactly as graphql-core's response stream would (`build_per_event_executor`,
then `execute_operation`: the answer shared by the selection's subscribers, event_payloads), and sends it as
the operation's `next` message (the frame encoded once for all of them). The layers above stay suspended on the
same awaitable for the subscription's life. Any other answer (one with errors, or none) is yielded up the
stack as before, where Strawberry processes and codes its errors: only the common path is shortened.

The two pieces the resolver needs are set in its operation's task: the protocol's operation (by the
graphql-transport-ws handler) and the subscription's executor (by the executor itself, when it builds the
resolver's info). The older graphql-ws protocol sets neither, and its subscriptions take the full stack."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.types import ExecutionResult


class Executor(Protocol):
    """What the resolver asks of the subscription's executor (graphql-core's `Executor`)."""

    def build_per_event_executor(self, payload: Any) -> Any: ...

    def is_awaitable(self, value: Any) -> bool: ...


class NextSender(Protocol):
    """What the resolver asks of the protocol's operation (Strawberry's graphql-transport-ws `Operation`)."""

    async def send_next(self, execution_result: ExecutionResult) -> None: ...


SUBSCRIBING_EXECUTOR: ContextVar[Executor | None] = ContextVar("subscribing_executor", default=None)
"""The executor of the subscription whose source stream the operation's task is creating."""


class ServedOperation:
    """The graphql-transport-ws operation a task serves (where its `next` messages go), for as long as it is
    served: `ended` lets go of it. A query's or mutation's reads start timers that copy the task's context, and
    a cancelled timer waits in the loop's schedule until its time: held there, the operation would keep its
    connection's handler (socket, caller) alive long after the connection closed."""

    __slots__ = ("operation",)

    def __init__(self, operation: NextSender) -> None:
        self.operation: NextSender | None = operation

    def ended(self) -> None:
        self.operation = None


DIRECT_OPERATION: ContextVar[ServedOperation | None] = ContextVar("direct_operation", default=None)
"""The graphql-transport-ws operation the task serves."""


class DirectDelivery:
    """Sends a subscription's answers with data and no errors as its `next` messages, from its resolver."""

    __slots__ = ("_executor", "_operation")

    def __init__(self, executor: Executor, operation: NextSender) -> None:
        self._executor = executor
        self._operation = operation

    async def sent(self, payload: object) -> bool:
        """Whether the answer to `payload` (the event's GraphQL object) was sent: False when it is one the full
        stack must handle (it is then yielded to it, and its shared answer is found again there, not run again).
        Raises what the send raises (the peer gone: WebSocketDisconnected)."""
        answer: Any = self._executor.build_per_event_executor(payload).execute_operation(False)
        if self._executor.is_awaitable(answer):
            answer = await answer
        if not isinstance(answer, GraphQLExecutionResult) or answer.errors or answer.data is None:
            return False
        await self._operation.send_next(ExecutionResult(data=answer.data, errors=None))
        return True


def direct_delivery() -> DirectDelivery | None:
    """The current task's direct delivery, when it serves a graphql-transport-ws subscription; else None. Both
    variables are cleared as they are read: a timer or task started later in the operation's task copies its
    context, and such a copy (a cancelled timer waits in the loop's schedule until its time) must not keep the
    operation and its executor alive after the subscription."""
    executor, served = SUBSCRIBING_EXECUTOR.get(), DIRECT_OPERATION.get()
    operation = served.operation if served is not None else None
    SUBSCRIBING_EXECUTOR.set(None)
    DIRECT_OPERATION.set(None)
    if executor is None or operation is None:
        return None
    return DirectDelivery(executor, operation)
