"""The WebSocket protocols' handlers: Strawberry's, refusing a connection whose credentials disagree or are
refused before it is acknowledged, closing it when a bearer token expires, sending a shared subscription
answer as the text encoded once for every subscriber of it, letting a graphql-transport-ws subscription's
resolver send its events itself (graphql_schema.event_delivery), and taking a send after the close went out for
the peer gone (`send_json`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Protocol, cast

from graphql import GraphQLFormattedError
from starlette.websockets import WebSocketDisconnect as StarletteGone
from starlette.websockets import WebSocketDisconnected as StarletteClosed
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage as TransportConnectionInit,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message as TransportMessage
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
    ErrorMessage,
    OperationMessage,
    StartMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from graphql_schema.context import Context
from graphql_schema.credentials import (
    AMBIGUOUS_CLOSE_CODE,
    CLOSE_CODE_OF_BEARER_STATUS,
    Stop,
    ambiguous_payload,
    close_reason,
    ending_with_credential,
    payload_caller,
    stopped,
)
from graphql_schema.errors import as_graphql_error
from graphql_schema.event_delivery import DIRECT_OPERATION, ServedOperation
from graphql_schema.event_payloads import next_frame
from graphql_schema.metrics import OPERATION_FAILED
from graphql_schema.websocket_messages import INVALID_MESSAGE_CLOSE_CODE, message_problem, unknown_type_error
from web.auth import TOKEN_FIELD

log = logging.getLogger("gateway.graphql")

REJECTED_TOKEN_CLOSE_CODE = 4403
INIT_TIMEOUT_CLOSE_CODE = 4408
"""graphql-transport-ws's close for a connection that sent no connection_init in time, used for graphql-ws too."""
PEER_GONE = (WebSocketDisconnected, StarletteGone, StarletteClosed)
"""What a send or close raises when the peer is gone (Strawberry's error, Starlette's two): no server error."""
TOKEN_REJECTION = f"missing or unknown {TOKEN_FIELD}"
"""What a request or connection without a valid credential is told."""


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, refusing a connection_init whose tokens disagree (`ambiguous_payload`) with 4400, and
    one whose bearer token is refused with 4401, 4403 or 1013 (CLOSE_CODE_OF_BEARER_STATUS)."""

    async def handle_connection_init(self, message: TransportConnectionInit) -> None:
        if self.connection_timed_out or self.connection_init_received:
            await super().handle_connection_init(message)  # too late, or a second one: refused as Strawberry does
            return
        # The connection_init came in time: the deadline stops here, as in Strawberry's, not once the token is
        # checked (a slow token source, an issuer's keys fetched) or the connection closed with 4408 meanwhile.
        if self.connection_init_timeout_task is not None:
            self.connection_init_timeout_task.cancel()
        refusal = ambiguous_payload(self.context.credential, message.get("payload"))
        if refusal is not None:
            await self.websocket.close(code=AMBIGUOUS_CLOSE_CODE, reason=refusal)
            return
        refused = await payload_caller(self.context, message.get("payload"))
        if refused is not None:
            close_code = CLOSE_CODE_OF_BEARER_STATUS.get(refused.status, REJECTED_TOKEN_CLOSE_CODE)
            await self.websocket.close(code=close_code, reason=close_reason(refused.message))
            return
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._expiry is None:
            self._expiry = ending_with_credential(self.websocket, self.context)

    _expiry: Stop | None = None

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:
            await stopped(self._expiry)

    async def handle_message(self, message: TransportMessage) -> None:
        problem = message_problem(GRAPHQL_TRANSPORT_WS_PROTOCOL, message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        refusal = past_connection_bound(self.context, message["id"], self.operations, self.connection_acknowledged)
        if refusal is not None:
            await self.send_message({"id": message["id"], "type": "error", "payload": [refusal]})
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Strawberry's, in the operation's own task, where a `taskEvents` resolver finds the operation to send
        its events to (graphql_schema.event_delivery), let go of when the operation ends."""
        served = ServedOperation(operation)
        DIRECT_OPERATION.set(served)
        try:
            await super().run_operation(operation)
        finally:
            served.ended()

    async def send_message(self, message: TransportMessage) -> None:
        """A `next` whose payload other subscriptions share goes out as the text encoded once for all of them."""
        await send_json(self.websocket, next_frame(message))

    async def handle_task_exception(self, error: Exception) -> None:
        """A send that finds the peer gone ends its operation (Strawberry closes its stream): no server error to
        log, as Strawberry would, with three tracebacks, for every client that leaves while it is answered. Nor is
        the connection_init deadline's close that finds the peer gone (its close or its TCP end came, not yet read
        by the handler: Starlette raises its own WebSocketDisconnect, 1006, as no send goes through `send_json`)."""
        if not isinstance(error, PEER_GONE):
            await super().handle_task_exception(error)


class _InitWait(Protocol):
    connection_init_wait_timeout: timedelta


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The older graphql-ws protocol closes a rejected connection with 1011 (internal error); a wrong token is
    no server error, so it is refused here first with the 4403 graphql-transport-ws uses, and tokens that
    disagree with the 4400 it uses for them. It sets no deadline for connection_init either: a socket that never
    sends one (and no subscription can start before it is acknowledged) held its connection for the life of the
    process; it gets graphql-transport-ws's deadline and close (`_close_unless_initialised`)."""

    _init_received = False

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        self._init_received = True
        context = self.context
        refusal = ambiguous_payload(context.credential, message.get("payload"))
        if refusal is not None:
            await self.send_message({"type": "connection_error", "payload": {"message": refusal}})
            await self.websocket.close(code=AMBIGUOUS_CLOSE_CODE, reason=refusal)
            return
        refused = await payload_caller(context, message.get("payload"))
        if refused is not None:
            await self.send_message({"type": "connection_error", "payload": {"message": refused.message}})
            close_code = CLOSE_CODE_OF_BEARER_STATUS.get(refused.status, REJECTED_TOKEN_CLOSE_CODE)
            await self.websocket.close(code=close_code, reason=close_reason(refused.message))
            return
        if not context.authenticated:
            await self.send_message({"type": "connection_error", "payload": {"message": TOKEN_REJECTION}})
            await self.websocket.close(code=REJECTED_TOKEN_CLOSE_CODE, reason=TOKEN_REJECTION)
            return
        await super().handle_connection_init(message)
        if self._expiry is None:
            self._expiry = ending_with_credential(self.websocket, context)

    _expiry: Stop | None = None

    async def handle(self) -> None:
        deadline = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            deadline.cancel()
            await stopped(self._expiry)

    async def handle_message(self, message: OperationMessage) -> None:
        problem = message_problem(GRAPHQL_WS_PROTOCOL, message)
        if problem is not None:
            with contextlib.suppress(*PEER_GONE):
                await self.websocket.close(code=INVALID_MESSAGE_CLOSE_CODE, reason=close_reason(problem))
            return
        unknown = unknown_type_error(cast("dict[str, object]", message))
        if unknown is not None:
            await send_json(self.websocket, unknown)
            return
        await super().handle_message(message)

    async def handle_start(self, message: StartMessage) -> None:
        refusal = past_connection_bound(self.context, message["id"], self.tasks, self.connection_acknowledged)
        if refusal is not None:
            await self.send_message(ErrorMessage(type="error", id=message["id"], payload=refusal))
            return
        await super().handle_start(message)

    async def _close_unless_initialised(self) -> None:
        """After the router's connection_init_wait_timeout, close the connection with 4408 unless a
        connection_init came (as Strawberry's graphql-transport-ws handler does)."""
        await asyncio.sleep(cast("_InitWait", self.view).connection_init_wait_timeout.total_seconds())
        if not self._init_received:
            with contextlib.suppress(*PEER_GONE):
                await self.websocket.close(code=INIT_TIMEOUT_CLOSE_CODE, reason="Connection initialisation timeout")

    async def send_message(self, message: OperationMessage) -> None:
        await send_json(self.websocket, message)

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        """Strawberry's, through `Schema.stream` rather than `Schema.subscribe`: a query or mutation sent with
        `start` runs too (one `data`, then `complete`), as the graphql-ws protocol has it, where Strawberry's
        own runs subscriptions only."""
        try:
            results = await self.schema.stream(
                query,
                variable_values=variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation_name,
            )
            self.subscriptions[operation_id] = results
            first = True
            async with contextlib.aclosing(results):  # a subscription ends here, not when collected
                async for result in results:
                    if first and isinstance(result, PreExecutionError) and result.errors:
                        payload = result.errors[0].formatted
                        await self.send_message(ErrorMessage(type="error", id=operation_id, payload=payload))
                        return
                    if isinstance(result, ExecutionResult):
                        await self.send_data_message(result, operation_id)
                    first = False
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
        except asyncio.CancelledError:
            with contextlib.suppress(WebSocketDisconnected):
                await self.send_message(CompleteMessage(type="complete", id=operation_id))
        except WebSocketDisconnected:
            pass  # the peer is gone: nothing to tell it, and the connection's end ends its other operations
        except Exception:
            # A bug (an answer that cannot be sent): logged, and the client told the operation is over (as
            # Strawberry does over graphql-transport-ws), not left waiting on a subscription nobody serves.
            log.exception("graphql-ws operation %r failed", operation_id)
            with contextlib.suppress(Exception):
                await self.send_message(CompleteMessage(type="complete", id=operation_id))
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


def past_connection_bound(
    context: Context, operation_id: str, in_flight: Collection[str], acknowledged: bool
) -> GraphQLFormattedError | None:
    """The refusal of an operation started on a connection that has TRACKING_SUBSCRIPTIONS_PER_CONNECTION
    operations in flight already (subscriptions open, queries and mutations running), answered before its document
    is parsed or a task is made for it: a client sending starts as fast as it can is refused at a small, fixed
    cost for each, where each went through parsing, validation and its own task before its resolver refused it
    (the gateway's loop and memory taken by one token). None: Strawberry handles the start (an operation id in
    flight replaces or refuses as the protocol says, an unacknowledged connection is closed)."""
    if not acknowledged or operation_id in in_flight or len(in_flight) < context.max_subscriptions:
        return None
    return as_graphql_error(context.connection_refusal()).formatted


async def send_json(websocket: AsyncWebSocketAdapter, message: Mapping[str, object]) -> None:
    """Send an operation's message. Starlette refuses a send once the connection's close went out (the peer gone
    while answers were queued) with an error of its own, which Strawberry's adapter lets through as it is: raised
    as the WebSocketDisconnected Strawberry raises when the peer is gone, so that it ends the operation quietly
    (`handle_task_exception`, a resolver's own sends) rather than as a server failure logged with its traceback.
    A send that fails for any other reason marks the operation of the task sending as failed
    (graphql_schema.metrics.OPERATION_FAILED): its stream, closed as the error goes up, counts as an error. One
    function, not context managers: every `next` frame goes through it."""
    try:
        await websocket.send_json(message)
    except StarletteClosed as closed:
        raise WebSocketDisconnected from closed
    except WebSocketDisconnected:
        raise
    except Exception:
        OPERATION_FAILED.set(True)
        raise
