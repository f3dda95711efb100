"""The cost budget (TRACKING_GRAPHQL_MAX_COST) checked before anything runs: an operation whose estimated cost
(graphql_schema.cost) is over it is refused with COST_LIMIT_EXCEEDED; every query and mutation it lets run
reports its estimate and the budget in the answer's `extensions.cost`. A subscription's estimate is its cost per
event, checked against TRACKING_GRAPHQL_MAX_EVENT_COST instead (graphql_schema.event_cost).

The estimate first stands the traversal bound in for the size of every job the operation names by id: nearly
every operation fits so, and costs no read. Only an operation that bound would refuse has those jobs' tasks
counted (models.jobs.sizes: one count per job, on the index, stopping past the bound), and is estimated again
with the counts: a job's task count never exceeds the bound it stands in for, so the outcome is exactly what
costing by the real sizes from the start would give, without a round trip for the operations that fit anyway.

The count runs before the operation's deadline starts (graphql_schema.deadline), under a deadline of its own
(TRACKING_MONGODB_TIMEOUT_MS): a hook that raises (the refusal) must come before any hook holding state across
execution, which Strawberry would not unwind. When MongoDB does not answer the count, the operation is answered
UNAVAILABLE without running, so it still waits one deadline at most.

While a query or mutation runs, its meter (graphql_schema.cost_meter) charges the lists no setting bounds (a
task's links, a job's edges) past the figure the estimate took for them; an answer that was charged reports
`extensions.cost.charged`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_schema.context import Context
from graphql_schema.cost import Bounds, Estimate, cost_limit_error, estimate_cost
from graphql_schema.cost_meter import OPERATION_METER, CostMeter
from graphql_schema.errors import user_error
from graphql_schema.event_cost import event_cost_error
from models import InvalidOperation

log = logging.getLogger("gateway.graphql")


def refuse_creates_over_the_bound(found: Estimate, context: Context) -> None:
    """An operation whose createTasks fields ask for more tasks together than one create may hold is refused
    whole before any runs (each field alone is within the bound: a mutation of aliased creates would else make
    the bound's worth of tasks once per alias, and the first ones would stand when a later one failed)."""
    try:
        context.limits.refuse_task_count(found.created, "the operation's createTasks together")
    except InvalidOperation as error:
        raise user_error(str(error)) from None


class CostBudget(SchemaExtension):
    """Refuses an operation whose estimated cost is over the budget before anything else runs (after parsing and
    validation: the estimate walks a valid document); reports the estimate and the budget of every query and
    mutation it lets run in the answer's `extensions.cost`."""

    def __init__(self) -> None:
        super().__init__()
        self.reported: dict[str, int] = {}

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        meter: CostMeter | None = None
        if isinstance(context, Context) and document is not None:

            def estimate(bounds: Bounds) -> Estimate | None:
                schema = execution.schema._schema
                return estimate_cost(schema, document, execution.operation_name, execution.variables, bounds)

            # A subscription's estimate is the cost of each event's answer: bounded per event (event_cost).
            per_event = execution.operation_type is OperationType.SUBSCRIPTION
            limit = context.max_event_cost if per_event else context.max_cost
            found = estimate(Bounds(context.max_traversal, max_history=context.max_history))
            if found is not None and found.cost > limit and found.sized_jobs:
                counts = await context.store.job_task_counts(found.sized_jobs, context.max_traversal + 1)
                found = estimate(Bounds(context.max_traversal, counts, context.max_history))
            if found is not None:
                refuse_creates_over_the_bound(found, context)
                if found.cost > limit:
                    log.info("GraphQL operation refused: estimated cost %d over %d", found.cost, limit)
                    raise (event_cost_error if per_event else cost_limit_error)(found.cost, limit)
                if execution.operation_type is not OperationType.SUBSCRIPTION:  # not on every event
                    self.reported = {"estimated": found.cost, "limit": context.max_cost}
                    refuses = execution.operation_type is OperationType.QUERY  # a mutation's change is made
                    meter = CostMeter(context.max_cost, found.cost, found.metered, refuses)
        metering = OPERATION_METER.set(meter)  # None too: no meter of an earlier operation of the task applies
        try:
            yield
        finally:
            OPERATION_METER.reset(metering)
            if meter is not None and meter.spent > self.reported["estimated"]:  # links past their figure
                self.reported = {**self.reported, "charged": meter.spent}

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.reported} if self.reported else {}
