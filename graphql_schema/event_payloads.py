"""One execution and one encoding per distinct subscription payload, whatever the number of subscribers.

graphql-core runs a subscription's selection on every event for every subscription, and each `next` message is
encoded for each: with ten dashboards per job on the same query, each event cost ten identical executions and
encodings. Here the answer to one event for one selection is computed once and shared:

- **Execution**: the per-event executor (`SharedEventExecution`, the schema's execution context class) keeps
  each answer on the event itself (`models.events.TaskEvent.derived`, through the GraphQL event object), keyed
  by the operation (the parsed document: Strawberry's parser cache gives the same query text the same
  document), the values of the variables the payload depends on (those outside the subscription field's own
  arguments: `jobId` and `after` choose the events, not what an event's payload holds), and the caller's
  audience (`Context.audience`: what the caller may see). Subscribers of the same dashboard query share one
  execution, whichever job or cursor they subscribed with.
- **Encoding**: the shared answer's `data` is a `SharedData` dict that remembers its JSON text; a
  graphql-transport-ws `next` message carrying it (`next_frame`) is the per-subscription `id` spliced around
  that text, not a new encoding of the payload.
- **Cost**: each execution runs with a meter of its own against the per-event budget (graphql_schema.event_cost),
  so a shared answer is metered once; `caller_selection` is the sharing key as the per-caller bound on distinct
  selections (web.rate_limits) counts it.

What stays per subscription is Strawberry's handling of each result (its extension hooks, the message) and
the WebSocket's own framing (and compression, when the client asked for it). A shared answer lives on its event
(held by the subscriptions' buffers) and goes with it, or earlier once SHARED_ANSWERS newer ones were kept.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Awaitable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLResolveInfo,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
)
from graphql.language import Node
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema.event_cost import EventBudget, event_budget, metered_event
from graphql_schema.event_delivery import SUBSCRIBING_EXECUTOR
from graphql_schema.large_answers import EncodedAnswer
from graphql_schema.metrics import SUBSCRIPTION_ENCODINGS, SUBSCRIPTION_EXECUTIONS

SHARED_RESULTS = "shared_results"
"""The attribute of a subscription's event object holding the answers shared by its subscribers."""

SelectionKey = tuple[int, tuple[tuple[str, str], ...], Hashable]
"""An operation (by identity), the values of the variables its payload depends on, the caller's audience."""

SHARED_ANSWERS = 4096
"""Shared answers kept at most, across events, the oldest forgotten first: what a reader lagging further
behind reads is executed again for it (correct, only not shared). Without a bound, one reader that lets
events wait would keep alive every answer any selection gave for each of them."""
_kept: deque[tuple[weakref.ref[SharedResults], SelectionKey]] = deque()
"""Weakly: an event's answers go with the event once every subscriber has read it (the bound only forgets
answers of events still held); held strongly, the bound kept thousands of answers of events long gone alive,
each promoted through the garbage collector's generations before it died."""
OPERATIONS_KEPT = 1024
"""Operations whose payload variables are remembered (by identity: an id alone may be reused once its operation
is gone, so each entry holds a weak reference to check it)."""
_VARIABLES_OF: dict[int, tuple[weakref.ref[OperationDefinitionNode], frozenset[str]]] = {}
_SHARED_EXECUTIONS = SUBSCRIPTION_EXECUTIONS.labels("shared")
_SHARED_ENCODINGS = SUBSCRIPTION_ENCODINGS.labels("shared")


class SharedResults(dict[object, object]):
    """An event's answers by selection (`TaskEventType.shared_results`): a dict the bound on kept answers can
    refer to weakly."""

    __slots__ = ("__weakref__",)


class SharedData(dict[str, Any]):
    """A shared answer's `data`: a plain dict to everything that reads it, with the JSON text of the `next`
    payload it was sent in, by what else that payload held (errors, extensions)."""

    __slots__ = ("encoded",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.encoded: list[tuple[dict[str, Any], str]] = []


@dataclass
class _Shared:
    operation: OperationDefinitionNode
    """Kept to check the key's identity: an operation's id may be reused once it is gone."""
    result: GraphQLExecutionResult | asyncio.Future[GraphQLExecutionResult]


class SharedEventExecution(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context; a subscription's per-event execution shares its answer with every
    subscription of the same selection, variables and audience (see the module's docstring)."""

    _selection_key: SelectionKey | None = None
    _budget: EventBudget | None = None
    _per_event = False

    def build_resolve_info(
        self, field_def: GraphQLField, field_nodes: list[FieldNode], parent_type: GraphQLObjectType, path: Path
    ) -> GraphQLResolveInfo[Any]:
        """graphql-core's; the subscription's own executor (not a per-event copy) is made known to its resolver,
        which its operation's task runs next (graphql_schema.event_delivery)."""
        if path.prev is None and not self._per_event and self.operation.operation is OperationType.SUBSCRIPTION:
            SUBSCRIBING_EXECUTOR.set(self)
        return super().build_resolve_info(field_def, field_nodes, parent_type, path)

    def build_per_event_executor(self, payload: Any) -> Any:
        if self._selection_key is None:  # once per subscription: the per-event executors are copies of this one
            self._selection_key = self._key_of_selection()
            coerced = self.variable_values.coerced
            self._budget = event_budget(
                self.schema, self.operation, self.fragment_definitions, coerced, self.context_value
            )
        found = self._shared_answer(payload)
        if found is not None:
            # Answered already: no copy of the executor, no execution to set up (most deliveries of a change).
            return _Answered(found)
        executor = super().build_per_event_executor(payload)
        executor._per_event = True  # type: ignore[attr-defined]  # a copy of this class: an instance of it
        return executor

    def _shared_answer(self, payload: Any) -> _Shared | None:
        """The answer another subscription of this selection already has for `payload`'s event, if any."""
        shared = getattr(payload, SHARED_RESULTS, None)
        if not isinstance(shared, SharedResults) or self.operation.operation is not OperationType.SUBSCRIPTION:
            return None
        found = shared.get(self._selection_key)
        return found if isinstance(found, _Shared) and found.operation is self.operation else None

    def execute_operation(self, serially: bool | None = None) -> Any:
        shared = getattr(self.root_value, SHARED_RESULTS, None)
        key = self._selection_key
        subscription = self.operation.operation is OperationType.SUBSCRIPTION
        if key is None or not isinstance(shared, SharedResults) or not subscription:
            return super().execute_operation(serially)
        found = self._shared_answer(self.root_value)
        if found is not None:
            return _Answered(found).execute_operation(serially)
        SUBSCRIPTION_EXECUTIONS.labels("executed").inc()
        with metered_event(self._budget):  # what the answer holds past its estimate (graphql_schema.event_cost)
            result = super().execute_operation(serially)
            if self.is_awaitable(result):
                # Nested fields that read: the first subscriber runs it, the others wait for the same answer (a
                # task of its own, so that one subscriber leaving does not cancel it for the others).
                future = asyncio.ensure_future(_with_shared_data(cast(Awaitable[GraphQLExecutionResult], result)))
                _keep(shared, key, _Shared(self.operation, future))
                return _awaited(future)
        answer = _sharing_data(cast(GraphQLExecutionResult, result))
        _keep(shared, key, _Shared(self.operation, answer))
        return answer

    def _key_of_selection(self) -> SelectionKey:
        values = payload_values(self.operation, self.fragment_definitions, self.variable_values.coerced)
        audience = getattr(self.context_value, "audience", None)
        return (id(self.operation), values, audience if isinstance(audience, Hashable) else id(self.context_value))


class _Answered:
    """A per-event executor whose answer is shared: graphql-core's subscription loop only calls
    `execute_operation` on it (graphql.execution.execute_subscription_event)."""

    __slots__ = ("_found",)

    def __init__(self, found: _Shared) -> None:
        self._found = found

    def execute_operation(self, serially: bool | None = None) -> Any:
        _SHARED_EXECUTIONS.inc()
        result = self._found.result
        return _awaited(result) if isinstance(result, asyncio.Future) else result


def _keep(shared: SharedResults, key: SelectionKey, answer: _Shared) -> None:
    shared[key] = answer
    _kept.append((weakref.ref(shared), key))
    while len(_kept) > SHARED_ANSWERS:
        oldest, its_key = _kept.popleft()
        answers = oldest()
        if answers is not None:
            answers.pop(its_key, None)


async def _awaited(future: asyncio.Future[GraphQLExecutionResult]) -> GraphQLExecutionResult:
    return await asyncio.shield(future)


async def _with_shared_data(result: Awaitable[GraphQLExecutionResult]) -> GraphQLExecutionResult:
    return _sharing_data(await result)


def _sharing_data(result: GraphQLExecutionResult) -> GraphQLExecutionResult:
    if result.data is not None and not isinstance(result.data, SharedData):
        result.data = SharedData(result.data)
    return result


def payload_values(
    operation: OperationDefinitionNode, fragments: Mapping[str, Any], coerced: Mapping[str, Any]
) -> tuple[tuple[str, str], ...]:
    """The values of the variables an event's payload depends on (`payload_variables`), by name."""
    names = sorted(_payload_variables_of(operation, fragments.values()) & coerced.keys())
    return tuple((name, repr(coerced[name])) for name in names)


def caller_selection(
    operation: OperationDefinitionNode, fragments: Mapping[str, Any], coerced: Mapping[str, Any]
) -> Hashable:
    """What one caller's subscriptions share an answer by, as the per-caller bound on distinct selections
    (TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER) counts them: the document's text and operation (the same text
    is parsed into the same shared operation) and the payload's variables. By text rather than by the parsed
    document's identity, so that a subscription whose document was parsed again still counts as the same."""
    source = operation.loc.source.body if operation.loc is not None else id(operation)
    name = operation.name.value if operation.name is not None else None
    return (source, name, payload_values(operation, fragments, coerced))


def _payload_variables_of(operation: OperationDefinitionNode, fragments: Any) -> frozenset[str]:
    """`payload_variables`, walked once per parsed operation (Strawberry's parser cache hands every subscription
    of the same query text the same document): a fleet of tabs on one dashboard query walks its document once,
    not once per tab on its first event."""
    known = _VARIABLES_OF.get(id(operation))
    if known is not None and known[0]() is operation:
        return known[1]
    names = frozenset(payload_variables(operation, fragments))
    if len(_VARIABLES_OF) >= OPERATIONS_KEPT:
        del _VARIABLES_OF[next(iter(_VARIABLES_OF))]  # the oldest: dicts keep their order
    _VARIABLES_OF[id(operation)] = (weakref.ref(operation), names)
    return names


def payload_variables(operation: OperationDefinitionNode, fragments: Any) -> set[str]:
    """The variables an event's payload may depend on: every one the operation uses except in the arguments of
    its root fields (they choose the events); all of them when the root selection is not plain fields."""
    found: set[str] = set()
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            _variables_in(selection.directives, found)
            _variables_in(selection.selection_set, found)
        else:
            return _variables_in((operation.directives, operation.selection_set, tuple(fragments)), set())
    _variables_in(operation.directives, found)
    return _variables_in(tuple(fragments), found)


def _variables_in(node: object, found: set[str]) -> set[str]:
    if isinstance(node, VariableNode):
        found.add(node.name.value)
    elif isinstance(node, tuple | list):
        for child in node:
            _variables_in(child, found)
    elif isinstance(node, Node):
        for name in node.keys:
            if name != "loc":
                _variables_in(getattr(node, name), found)
    return found


def next_frame(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """A graphql-transport-ws message, with its text already encoded (an `EncodedAnswer`, which the router's
    `encode_json` sends as it is) when it is a `next` whose payload's data is shared: the payload's text is
    encoded once, then each subscription's frame is its `id` around it."""
    payload = message.get("payload")
    if message.get("type") != "next" or not isinstance(payload, dict):
        return message
    data = payload.get("data")
    if not isinstance(data, SharedData):
        return message
    rest = {name: value for name, value in payload.items() if name != "data"}
    text = next((text for other, text in data.encoded if other == rest), None)
    if text is None:
        try:
            text = orjson.dumps(payload).decode()
        except TypeError:  # what orjson cannot encode (an integer past 64 bits): the router's fallback, unshared
            return message
        data.encoded.append((rest, text))
        SUBSCRIPTION_ENCODINGS.labels("encoded").inc()
    else:
        _SHARED_ENCODINGS.inc()
    frame = f'{{"id":{orjson.dumps(message["id"]).decode()},"type":"next","payload":{text}}}'
    return EncodedAnswer(dict(message), frame)
