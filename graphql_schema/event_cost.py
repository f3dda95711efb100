"""The budget of a subscription's work per event (TRACKING_GRAPHQL_MAX_EVENT_COST).

A subscription's selection runs again on every event it receives, so its estimated cost (graphql_schema.cost:
the estimate of a subscription is the cost of one event's answer) is a cost per event, which every change of its
job pays again. It is bounded apart from an operation's budget (TRACKING_GRAPHQL_MAX_COST, sized for one large
answer): a selection over the per-event budget is refused when it subscribes, with COST_LIMIT_EXCEEDED naming this
setting (graphql_schema.cost_budget). What one caller's subscriptions cost per event is then at most this budget
times the distinct selections it may hold (TRACKING_SUBSCRIPTION_SELECTIONS_PER_CALLER, web.rate_limits)."""

from __future__ import annotations

from graphql import GraphQLError

from graphql_schema.cost import COST_LIMIT_EXCEEDED

MAX_EVENT_COST_SETTING = "TRACKING_GRAPHQL_MAX_EVENT_COST"


def event_cost_error(cost: int, limit: int) -> GraphQLError:
    """A subscription's selection (or, as an event's answer is built, one of its fields) over the per-event
    budget: coded and shaped like an operation's refusal (extensions `cost` and `limit`), naming its setting."""
    return GraphQLError(
        f"the subscription's estimated cost per event {cost} is over the limit of {limit} ({MAX_EVENT_COST_SETTING}):"
        " every event runs its selection again; select fewer fields or lists, and query what is large once "
        "(docs/reference/graphql-cost.md)",
        extensions={"code": COST_LIMIT_EXCEEDED, "cost": cost, "limit": limit},
    )
