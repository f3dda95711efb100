"""The cost of a GraphQL operation, estimated from its document, arguments and variables before anything runs.

Every object an answer may hold counts 1; scalars count 0. A field returning objects costs its estimated number
of objects times (1 + the cost of its selection), so nested lists multiply: a job's 20,000 tasks each with a
page of 50 history entries cost 20,000 x (1 + 50). The estimated sizes (`FIELD_SIZES`) are upper bounds: page
sizes and id lists from the arguments, a job's task count for its whole-job lists (`Bounds.job_sizes`, counted
by graphql_schema.cost_budget; TRACKING_GRAPHQL_MAX_TRAVERSAL while not counted), the traversal bound for walks,
a history's page (`last`, at most TRACKING_GRAPHQL_MAX_HISTORY); the lists nothing bounds (a task's links, a
job's edges: METERED) are estimated at a figure whose excess graphql_schema.cost_meter charges as the answer
meets it. Aliases and fragments count each time they are selected; the
cost of a selection set is computed once per (type, job) and memoised, so a document of fragments spreading
fragments (a "fragment bomb") costs its estimator a few operations per fragment, however large the number it
comes to. docs/reference/graphql-cost.md lists every rule; tests/graphql_schema/test_graphql_cost.py checks it against
`cost_reference()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_leaf_type,
    is_list_type,
    value_from_ast_untyped,
)
from graphql.type.definition import GraphQLCompositeType, GraphQLInterfaceType, GraphQLObjectType

from models.defaults import MAX_HISTORY

LINKS_ESTIMATE = 10
"""The estimated number of a task's direct next, previous or blocking tasks."""
SMALL_LIST = 10
"""The estimated length of any other list of objects (a job's status counts, say)."""
COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class Bounds:
    """What the estimates depend on besides the document: the request's settings, and the task counts of the
    jobs the operation names by id, as far as they were counted (a job not counted: the traversal bound)."""

    max_traversal: int
    job_sizes: Mapping[str, int] = field(default_factory=dict)
    max_history: int = MAX_HISTORY

    def job_size(self, job_id: str | None) -> int:
        """How many tasks a job's whole-job lists hold at most: its count, never over the traversal bound (past
        it, those lists are refused, TRAVERSAL_TOO_LARGE)."""
        counted = self.job_sizes.get(job_id) if job_id is not None else None
        return self.max_traversal if counted is None else min(counted, self.max_traversal)


@dataclass(frozen=True)
class Scope:
    """Where a field is estimated: the request's bounds, and the job whose fields these are when the operation
    named it by id (`Query.job(id)`); None elsewhere (a job of `Query.jobs`, a Task's fields)."""

    bounds: Bounds
    job_id: str | None = None


SizeRule = Callable[[Mapping[str, Any], Scope], int]


def _job_size(_: Mapping[str, Any], scope: Scope) -> int:
    return scope.bounds.job_size(scope.job_id)


def _first(arguments: Mapping[str, Any], _: Scope) -> int:
    first = arguments.get("first")
    return max(first, 0) if isinstance(first, int) else 0


def _listed(name: str) -> SizeRule:
    def size(arguments: Mapping[str, Any], _: Scope) -> int:
        given = arguments.get(name)
        return len(given) if isinstance(given, list) else 1

    return size


def _fixed(count: int) -> SizeRule:
    def size(_arguments: Mapping[str, Any], _scope: Scope) -> int:
        return count

    return size


def _walk(_: Mapping[str, Any], scope: Scope) -> int:
    """A walk holds at most the traversal bound (refused past it, TRAVERSAL_TOO_LARGE), maxDepth or not: a few
    levels of a wide fan-out reach as many tasks as the whole walk."""
    return scope.bounds.max_traversal


def _history(arguments: Mapping[str, Any], scope: Scope) -> int:
    """A history field returns at most `last` changes, TRACKING_GRAPHQL_MAX_HISTORY when not given (more is
    refused when it runs)."""
    last, bound = arguments.get("last"), scope.bounds.max_history
    return min(max(last, 0), bound) if isinstance(last, int) else bound


def _blocked_by(arguments: Mapping[str, Any], scope: Scope) -> int:
    return scope.bounds.max_traversal if arguments.get("transitive") else LINKS_ESTIMATE


def _changed_links(arguments: Mapping[str, Any], _: Scope) -> int:
    given = arguments.get("nextIds", arguments.get("previousIds"))
    return max(len(given) if isinstance(given, list) else 0, LINKS_ESTIMATE)


def tasks_given(tasks: object) -> int:
    """How many tasks a createTasks `tasks` argument (as sent) holds, those in `nexts` included. GraphQL's input
    coercion makes a single object where a list is expected a list of one (`tasks: {…}`, `nexts: {…}`): counted
    as such."""
    count = 0
    pending = [tasks]
    while pending:
        given = pending.pop()
        listed = given if isinstance(given, list) else [given] if isinstance(given, dict) else []
        count += len(listed)
        pending.extend(task.get("nexts") for task in listed if isinstance(task, dict))
    return count


def _created(arguments: Mapping[str, Any], _: Scope) -> int:
    return tasks_given(arguments.get("tasks"))


@dataclass(frozen=True)
class SizeEstimate:
    """How many objects a field is estimated to hold, and that rule in words (for the reference page)."""

    rule: SizeRule
    described: str


_JOB = SizeEstimate(
    _job_size,
    "the job's task count, at most TRACKING_GRAPHQL_MAX_TRAVERSAL (the bound itself for a job not named by "
    "`Query.job(id)`, or not counted)",
)
_LINKS = SizeEstimate(
    _fixed(LINKS_ESTIMATE), f"{LINKS_ESTIMATE} per task, and each link past them as the answer meets it (metered)"
)
_WALK = SizeEstimate(_walk, "TRACKING_GRAPHQL_MAX_TRAVERSAL, with or without maxDepth")
_HISTORY = SizeEstimate(
    _history, "`last`, TRACKING_GRAPHQL_MAX_HISTORY when not given (at most that many changes are read per task)"
)
_PAGE = SizeEstimate(_first, "`first` (the connection's edges, node and cursor count once per edge)")
_ONE = SizeEstimate(_fixed(1), "1 (the page's edges: `first` is counted by the connection)")

FIELD_SIZES: dict[tuple[str, str], SizeEstimate] = {
    ("Query", "tasks"): SizeEstimate(_listed("ids"), "the number of `ids`"),
    ("Query", "jobs"): _PAGE,
    ("Query", "taskHistory"): _HISTORY,
    ("Job", "tasks"): _JOB,
    ("Job", "roots"): _JOB,
    ("Job", "edges"): SizeEstimate(
        _job_size, "the job's task count as for `Job.tasks`, and each link past it as the answer meets it (metered)"
    ),
    ("Job", "criticalPath"): _JOB,
    ("Job", "levels"): _JOB,
    ("Job", "taskPage"): _PAGE,
    ("Job", "statusCounts"): SizeEstimate(
        _fixed(SMALL_LIST),
        f"{SMALL_LIST} (the job's distinct statuses), and each status past them as the answer meets it (metered)",
    ),
    ("TaskConnection", "edges"): _ONE,
    ("JobConnection", "edges"): _ONE,
    ("Task", "nexts"): _LINKS,
    ("Task", "previous"): _LINKS,
    ("Task", "blockedBy"): SizeEstimate(
        _blocked_by,
        f"{LINKS_ESTIMATE}, and each previous task past them as the answer meets it (metered); with transitive: "
        "true, TRACKING_GRAPHQL_MAX_TRAVERSAL",
    ),
    ("Task", "descendants"): _WALK,
    ("Task", "ancestors"): _WALK,
    ("Task", "history"): _HISTORY,
    ("Task", "historyTruncated"): SizeEstimate(
        _history, "`last` (a scalar, but it reads the changes `history(last)` would: counted as those)"
    ),
    ("Mutation", "createTasks"): SizeEstimate(_created, "the number of `tasks` given, nested ones included"),
    ("Mutation", "addNexts"): SizeEstimate(_changed_links, f"the number of ids given, at least {LINKS_ESTIMATE}"),
    ("Mutation", "addPrevious"): SizeEstimate(_changed_links, f"the number of ids given, at least {LINKS_ESTIMATE}"),
}
"""(type, field) -> the estimated number of objects the field holds. Any other field: 1 object, or SMALL_LIST
objects for a list; a scalar (or a list of scalars) costs nothing."""
METERED = frozenset(
    {("Task", "nexts"), ("Task", "previous"), ("Task", "blockedBy"), ("Job", "edges"), ("Job", "statusCounts")}
)
"""Lists no setting bounds, estimated at a figure whose excess graphql_schema.cost_meter charges as the answer
meets it: a task's direct links and a job's edges (a task may hold any number of links), a job's distinct
statuses (a status is any string); `blockedBy(transitive: true)` is a walk, bounded by
TRACKING_GRAPHQL_MAX_TRAVERSAL."""
INTROSPECTION = frozenset({"__schema", "__type"})
"""Introspection counts 1 whatever it selects: it reads no data, and its depth is bounded apart."""


@dataclass(frozen=True)
class Estimate:
    """An operation's estimated cost, and the jobs named by id whose task counts it used (the traversal bound
    standing for each of them when they were not counted)."""

    cost: int
    sized_jobs: frozenset[str]
    metered: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    created: int = 0
    """The tasks the operation's createTasks fields ask for together, nested ones included: bounded per operation
    as one create is (TRACKING_MAX_TASKS_PER_CREATE), before any of them runs."""
    """id of the node of each field whose length no setting bounds (METERED) -> (the objects counted per parent,
    the cost of each): graphql_schema.cost_meter charges what the answer holds past them."""


class _Estimator:
    """The cost of one operation's selections, each (selection set, type, job) computed once."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        bounds: Bounds,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.bounds = bounds
        self.known: dict[tuple[int, str, str | None], int] = {}
        self.sized_jobs: set[str] = set()
        self.metered: dict[int, tuple[int, int]] = {}
        self.created = 0

    def selection_cost(
        self, selection_set: SelectionSetNode | None, parent: GraphQLCompositeType, job_id: str | None = None
    ) -> int:
        if selection_set is None:
            return 0
        key = (id(selection_set), parent.name, job_id)
        if key not in self.known:
            self.known[key] = 0  # a cycle (refused by validation beforehand) costs nothing more
            self.known[key] = sum(self._cost(selection, parent, job_id) for selection in selection_set.selections)
        return self.known[key]

    def _cost(self, selection: Any, parent: GraphQLCompositeType, job_id: str | None) -> int:
        if isinstance(selection, FieldNode):
            return self._field_cost(selection, parent, job_id)
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            return self.selection_cost(
                selection.selection_set, self._type(condition.name.value) if condition else parent, job_id
            )
        if isinstance(selection, FragmentSpreadNode):
            fragment = self.fragments.get(selection.name.value)
            if fragment is None:
                return 0
            return self.selection_cost(fragment.selection_set, self._type(fragment.type_condition.name.value), job_id)
        return 0

    def _type(self, name: str) -> GraphQLCompositeType:
        found = self.schema.type_map[name]
        assert isinstance(found, GraphQLObjectType | GraphQLInterfaceType)
        return found

    def _field_cost(self, node: FieldNode, parent: GraphQLCompositeType, job_id: str | None) -> int:
        name = node.name.value
        if name in INTROSPECTION:
            return 1
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else None
        if definition is None:  # __typename, or a field validation refused
            return 0
        named = get_named_type(definition.type)
        estimate = FIELD_SIZES.get((parent.name, name))
        if is_leaf_type(named):  # a scalar costs nothing, but for what it reads (FIELD_SIZES)
            return estimate.rule(self._arguments(definition, node), Scope(self.bounds, job_id)) if estimate else 0
        arguments = self._arguments(definition, node)
        if estimate is not None:
            size = estimate.rule(arguments, Scope(self.bounds, job_id))
            if estimate.rule is _job_size and job_id is not None:
                self.sized_jobs.add(job_id)
            if estimate.rule is _created:  # the tasks a createTasks asks for: counted once, for both
                self.created += size
        else:
            size = SMALL_LIST if is_list_type(get_nullable_type(definition.type)) else 1
        assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
        each = 1 + self.selection_cost(node.selection_set, named, _job_of(parent.name, name, arguments))
        if (parent.name, name) in METERED and not arguments.get("transitive"):
            self._meter(node, size, each)
        return size * each

    def _meter(self, node: FieldNode, size: int, each: int) -> None:
        """The figures a metered field was estimated with; a node estimated twice (a fragment spread under two
        jobs) keeps the smaller count and the larger cost, which charge the more."""
        counted, cost = self.metered.get(id(node), (size, each))
        self.metered[id(node)] = (min(counted, size), max(cost, each))

    def _arguments(self, definition: Any, node: FieldNode) -> Mapping[str, Any]:
        """The field's arguments as sent (variables substituted, defaults filled in), not coerced: the rules
        read a number, a flag or a list's length, and coercing a 10,000-task createTasks twice (here and in
        execution) would cost seconds. A value of the wrong type is execution's to refuse."""
        given = {
            argument.name.value: value_from_ast_untyped(argument.value, self.variables)
            for argument in node.arguments or ()
        }
        defaults = {name: argument.default_value for name, argument in definition.args.items()}
        return {**defaults, **given}


def _job_of(parent: str, name: str, arguments: Mapping[str, Any]) -> str | None:
    """The job whose fields a field's selection holds: the one `Query.job(id)` names; None for any other field
    (a job of a listing is any job)."""
    if (parent, name) != ("Query", "job"):
        return None
    job_id = arguments.get("id")
    return job_id if isinstance(job_id, str) else None


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    bounds: Bounds,
) -> Estimate | None:
    """The estimated cost of the operation to run, from its arguments and variables as sent and the job sizes
    `bounds` holds; None when there is no operation to run (execution refuses that with an error of its own)."""
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode):
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    given = dict(variables or {})
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in given and definition.default_value is not None:
            given[name] = value_from_ast_untyped(definition.default_value)
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    estimator = _Estimator(schema, fragments, given, bounds)
    cost = estimator.selection_cost(operation.selection_set, root)
    return Estimate(cost, frozenset(estimator.sized_jobs), estimator.metered, estimator.created)


def cost_limit_error(cost: int, limit: int, *, charged: bool = False) -> GraphQLError:
    """COST_LIMIT_EXCEEDED: the operation's estimate over the budget, or (`charged`) its cost once a list met
    while it ran was charged past its estimate (graphql_schema.cost_meter: that field alone is refused)."""
    what = (
        "the operation's cost with this field's lists charged past their estimate" if charged else
        "the operation's estimated cost"
    )  # fmt: skip
    return GraphQLError(
        f"{what} {cost} is over the limit of {limit} (TRACKING_GRAPHQL_MAX_COST): select "
        "fewer fields or lists, or page through taskPage (docs/reference/graphql-cost.md)",
        extensions={"code": COST_LIMIT_EXCEEDED, "cost": cost, "limit": limit},
    )


def cost_reference() -> str:
    """The table of docs/reference/graphql-cost.md: every field with an estimate of its own, and its rule."""
    rows = [f"| `{type_name}.{name}` | {estimate.described} |" for (type_name, name), estimate in FIELD_SIZES.items()]
    return "\n".join(["| Field | Estimated objects |", "|---|---|", *rows])
