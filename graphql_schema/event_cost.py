"""The budget of a subscription's work per event (TRACKING_GRAPHQL_MAX_EVENT_COST).

A subscription's selection runs again on every event it receives, so its estimated cost (graphql_schema.cost:
the estimate of a subscription is the cost of one event's answer) is a cost per event, which every change of its
job pays again. It is bounded apart from an operation's budget (TRACKING_GRAPHQL_MAX_COST, sized for one large
answer): a selection over the per-event budget is refused when it subscribes, with COST_LIMIT_EXCEEDED naming this
setting (graphql_schema.cost_budget). What one caller's subscriptions cost per event is then at most this budget
times the distinct selections it may hold (TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER, web.rate_limits).

The estimate stands a figure in for the lists no setting bounds (a task's links): each event's execution runs
with a meter of its own (graphql_schema.cost_meter, `metered_event`) that charges what the answer holds past
those figures against the per-event budget, and answers a field that would take the event over it with
COST_LIMIT_EXCEEDED in that event's payload; the subscription goes on, the next event metered afresh."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, FieldNode, GraphQLError, GraphQLSchema, OperationDefinitionNode

from graphql_schema.context import Context
from graphql_schema.cost import COST_LIMIT_EXCEEDED, Bounds, Estimate, estimate_cost
from graphql_schema.cost_meter import OPERATION_METER, CostMeter

MAX_EVENT_COST_SETTING = "TRACKING_GRAPHQL_MAX_EVENT_COST"


def event_cost_error(cost: int, limit: int, *, charged: bool = False) -> GraphQLError:
    """A subscription's selection over the per-event budget, or (`charged`) one event's answer once a list it
    met was charged past its estimate (that field alone is refused): coded and shaped like an operation's
    refusal (graphql_schema.cost.cost_limit_error: extensions `cost` and `limit`), naming this setting."""
    what = (
        "this event's cost with this field's lists charged past their estimate" if charged else
        "the subscription's estimated cost per event"
    )  # fmt: skip
    return GraphQLError(
        f"{what} {cost} is over the limit of {limit} ({MAX_EVENT_COST_SETTING}): every event runs the "
        "subscription's selection again; select fewer fields or lists, and query what is large once "
        "(docs/reference/graphql-cost.md)",
        extensions={"code": COST_LIMIT_EXCEEDED, "cost": cost, "limit": limit},
    )


class EventCostMeter(CostMeter):
    """The meter of one event's execution: a list past the per-event budget is refused naming its setting."""

    def charge(self, node: FieldNode, lengths: Iterable[int]) -> None:
        try:
            super().charge(node, lengths)
        except GraphQLError as refused:
            cost = (refused.extensions or {}).get("cost", self.limit)
            raise event_cost_error(cost, self.limit, charged=True) from None


@dataclass(frozen=True)
class EventBudget:
    """A subscription's per-event budget and its selection's estimate, which each event's meter starts from."""

    limit: int
    estimate: Estimate

    def meter(self) -> EventCostMeter:
        return EventCostMeter(self.limit, self.estimate.cost, self.estimate.metered)


def event_budget(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, Any],
    variables: Mapping[str, Any],
    context: object,
) -> EventBudget | None:
    """The per-event budget of a subscription's operation, estimated once per subscription (the events share its
    nodes, which the meter's figures are keyed by); None outside the gateway's context."""
    if not isinstance(context, Context):
        return None
    document = DocumentNode(definitions=(operation, *fragments.values()))
    name = operation.name.value if operation.name is not None else None
    bounds = Bounds(context.max_traversal, max_history=context.max_history)
    found = estimate_cost(schema, document, name, variables, bounds)
    return EventBudget(context.max_event_cost, found) if found is not None else None


@contextmanager
def metered_event(budget: EventBudget | None) -> Iterator[None]:
    """Around one event's execution: a meter of its own (what an event spends is not the next one's), seen by the
    resolvers run now and by the tasks started now (a task copies the context it was started in)."""
    metering = OPERATION_METER.set(budget.meter() if budget is not None else None)
    try:
        yield
    finally:
        OPERATION_METER.reset(metering)
