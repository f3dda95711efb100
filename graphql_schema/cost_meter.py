"""The cost of an operation as it runs, beside its estimate (graphql_schema.cost): the lists whose length no
setting bounds (a task's direct links, a job's edges) are estimated at a figure, and the answer's real lengths
are charged against the budget when they are longer, before the objects are built.

A task's links are not bounded anywhere (the stored layout takes any number, ops tools write them directly, and
the API adds at most TRACKING_MAX_IDS_PER_REQUEST per request but any number of requests), so an estimate of
them is no bound by itself; reading each task's link count before the operation would read every task it may
reach. So the estimate stands a figure in for them (10 links per task, the job's task count for its edges), and
the meter makes that figure's excess count when it is met: when the parent is read, a list longer than its
figure costs its extra objects (each at its selection's estimated cost), and a list whose extra objects would
take the operation over TRACKING_GRAPHQL_MAX_COST is refused (COST_LIMIT_EXCEEDED, that field only; the rest
answers). The work an operation does therefore stays within the budget, whatever the links hold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from graphql import FieldNode

from graphql_schema.cost import cost_limit_error


class _Selected(Protocol):
    @property
    def node(self) -> FieldNode | None: ...


@dataclass
class CostMeter:
    """One operation's cost so far: its estimate, plus what the metered lists held past their figure."""

    limit: int
    spent: int
    figures: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    """id of a metered field's node -> (the objects the estimate counted per parent, the cost of each object)."""
    refuses: bool = True
    """False for a mutation: its change is made by the time its answer is built, and an error there would say it
    failed; what it charges is reported, never refused."""

    def charge(self, node: FieldNode, lengths: Iterable[int]) -> None:
        """The lengths the field `node` has for each of its parents: what each holds past the estimate's figure
        is spent, or COST_LIMIT_EXCEEDED (nothing spent) when it would take a query over the budget."""
        figure, each = self.figures.get(id(node), (0, 1))
        extra = sum(length - figure for length in lengths if length > figure) * each
        if extra == 0:
            return
        if self.refuses and self.spent + extra > self.limit:
            raise cost_limit_error(self.spent + extra, self.limit, charged=True)
        self.spent += extra


OPERATION_METER: ContextVar[CostMeter | None] = ContextVar("graphql_cost_meter", default=None)
"""The running query's or mutation's meter (set by graphql_schema.cost_budget); None elsewhere (subscriptions:
an event's answer is one task)."""


def charge(node: FieldNode, lengths: Iterable[int]) -> None:
    """Charge the running operation's meter, if it has one (CostMeter.charge)."""
    meter = OPERATION_METER.get()
    if meter is not None:
        meter.charge(node, lengths)


def metered(field: _Selected, lengths: Iterable[int]) -> None:
    """`charge` for a field of the compiled path (graphql_schema.compiled_plan.Field)."""
    if field.node is not None:
        charge(field.node, lengths)
