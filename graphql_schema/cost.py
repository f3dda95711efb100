"""The cost of a GraphQL operation, estimated from its document, arguments and variables before anything runs,
and the budget it must fit (TRACKING_GRAPHQL_MAX_COST).

Every object an answer may hold counts 1; scalars count 0. A field returning objects costs its estimated number
of objects times (1 + the cost of its selection), so nested lists multiply: a job's 20,000 tasks each with 10
history entries cost 20,000 x (1 + 10) = 220,000. The estimated sizes (`FIELD_SIZES`) are upper bounds
known without reading MongoDB: page sizes and id lists from the arguments, TRACKING_GRAPHQL_MAX_TRAVERSAL for
whatever lists a whole job or a walk, fixed estimates for a task's links, history and counts. Aliases and
fragments count each time they are selected; the cost of a selection set is computed once per type and
memoised, so a document of fragments spreading fragments (a "fragment bomb") costs its estimator a few
operations per fragment, however large the number it comes to. docs/reference/graphql-cost.md lists every
rule; tests/graphql_schema/test_graphql_cost.py checks it against `cost_reference()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_schema.context import Context

log = logging.getLogger("gateway.graphql")

LINKS_ESTIMATE = 10
"""The estimated number of a task's direct next, previous or blocking tasks."""
HISTORY_ESTIMATE = 10
"""The estimated number of a task's recorded changes."""
SMALL_LIST = 10
"""The estimated length of any other list of objects (a job's status counts, say)."""
COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class Bounds:
    """What the estimates depend on besides the document: the request's settings."""

    max_traversal: int


SizeRule = Callable[[Mapping[str, Any], Bounds], int]


def _traversal(_: Mapping[str, Any], bounds: Bounds) -> int:
    return bounds.max_traversal


def _first(arguments: Mapping[str, Any], _: Bounds) -> int:
    first = arguments.get("first")
    return max(first, 0) if isinstance(first, int) else 0


def _listed(name: str) -> SizeRule:
    def size(arguments: Mapping[str, Any], _: Bounds) -> int:
        given = arguments.get(name)
        return len(given) if isinstance(given, list) else 1

    return size


def _fixed(count: int) -> SizeRule:
    def size(_arguments: Mapping[str, Any], _bounds: Bounds) -> int:
        return count

    return size


def _walk(arguments: Mapping[str, Any], bounds: Bounds) -> int:
    """A walk holds at most the traversal bound, and within maxDepth levels at most LINKS_ESTIMATE tasks more
    per task of the level before."""
    depth = arguments.get("maxDepth")
    if not isinstance(depth, int):
        return bounds.max_traversal
    reached, level = 0, 1
    for _ in range(min(max(depth, 0), 32)):  # past a few levels the bound is the smaller
        level *= LINKS_ESTIMATE
        reached += level
        if reached >= bounds.max_traversal:
            return bounds.max_traversal
    return reached


def _blocked_by(arguments: Mapping[str, Any], bounds: Bounds) -> int:
    return bounds.max_traversal if arguments.get("transitive") else LINKS_ESTIMATE


def _changed_links(arguments: Mapping[str, Any], _: Bounds) -> int:
    given = arguments.get("nextIds", arguments.get("previousIds"))
    return max(len(given) if isinstance(given, list) else 0, LINKS_ESTIMATE)


@dataclass(frozen=True)
class SizeEstimate:
    """How many objects a field is estimated to hold, and that rule in words (for the reference page)."""

    rule: SizeRule
    described: str


_TRAVERSAL = SizeEstimate(_traversal, "TRACKING_GRAPHQL_MAX_TRAVERSAL")
_LINKS = SizeEstimate(_fixed(LINKS_ESTIMATE), f"{LINKS_ESTIMATE} (estimated links of a task)")
_WALK = SizeEstimate(
    _walk, f"TRACKING_GRAPHQL_MAX_TRAVERSAL; with maxDepth d, at most {LINKS_ESTIMATE}^1 + ... + {LINKS_ESTIMATE}^d"
)
_HISTORY = SizeEstimate(_fixed(HISTORY_ESTIMATE), f"{HISTORY_ESTIMATE} (estimated changes of a task)")
_PAGE = SizeEstimate(_first, "`first` (the connection's edges, node and cursor count once per edge)")
_ONE = SizeEstimate(_fixed(1), "1 (the page's edges: `first` is counted by the connection)")

FIELD_SIZES: dict[tuple[str, str], SizeEstimate] = {
    ("Query", "tasks"): SizeEstimate(_listed("ids"), "the number of `ids`"),
    ("Query", "jobs"): _PAGE,
    ("Query", "taskHistory"): _HISTORY,
    ("Job", "tasks"): _TRAVERSAL,
    ("Job", "roots"): _TRAVERSAL,
    ("Job", "edges"): _TRAVERSAL,
    ("Job", "criticalPath"): _TRAVERSAL,
    ("Job", "levels"): _TRAVERSAL,
    ("Job", "taskPage"): _PAGE,
    ("TaskConnection", "edges"): _ONE,
    ("JobConnection", "edges"): _ONE,
    ("Task", "nexts"): _LINKS,
    ("Task", "previous"): _LINKS,
    ("Task", "blockedBy"): SizeEstimate(
        _blocked_by, f"{LINKS_ESTIMATE}; with transitive: true, TRACKING_GRAPHQL_MAX_TRAVERSAL"
    ),
    ("Task", "descendants"): _WALK,
    ("Task", "ancestors"): _WALK,
    ("Task", "history"): _HISTORY,
    ("Mutation", "createTasks"): SizeEstimate(_listed("tasks"), "the number of `tasks` given"),
    ("Mutation", "addNexts"): SizeEstimate(_changed_links, f"the number of ids given, at least {LINKS_ESTIMATE}"),
    ("Mutation", "addPrevious"): SizeEstimate(_changed_links, f"the number of ids given, at least {LINKS_ESTIMATE}"),
}
"""(type, field) -> the estimated number of objects the field holds. Any other field: 1 object, or SMALL_LIST
objects for a list; a scalar (or a list of scalars) costs nothing."""
INTROSPECTION = frozenset({"__schema", "__type"})
"""Introspection counts 1 whatever it selects: it reads no data, and its depth is bounded apart."""


class _Estimator:
    """The cost of one operation's selections, each (selection set, type) computed once."""

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
        self.known: dict[tuple[int, str], int] = {}

    def selection_cost(self, selection_set: SelectionSetNode | None, parent: GraphQLCompositeType) -> int:
        if selection_set is None:
            return 0
        key = (id(selection_set), parent.name)
        if key not in self.known:
            self.known[key] = 0  # a cycle (refused by validation beforehand) costs nothing more
            self.known[key] = sum(self._cost(selection, parent) for selection in selection_set.selections)
        return self.known[key]

    def _cost(self, selection: Any, parent: GraphQLCompositeType) -> int:
        if isinstance(selection, FieldNode):
            return self._field_cost(selection, parent)
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            return self.selection_cost(
                selection.selection_set, self._type(condition.name.value) if condition else parent
            )
        if isinstance(selection, FragmentSpreadNode):
            fragment = self.fragments.get(selection.name.value)
            if fragment is None:
                return 0
            return self.selection_cost(fragment.selection_set, self._type(fragment.type_condition.name.value))
        return 0

    def _type(self, name: str) -> GraphQLCompositeType:
        found = self.schema.type_map[name]
        assert isinstance(found, GraphQLObjectType | GraphQLInterfaceType)
        return found

    def _field_cost(self, node: FieldNode, parent: GraphQLCompositeType) -> int:
        name = node.name.value
        if name in INTROSPECTION:
            return 1
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else None
        if definition is None:  # __typename, or a field validation refused
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        estimate = FIELD_SIZES.get((parent.name, name))
        if estimate is not None:
            size = estimate.rule(self._arguments(definition, node), self.bounds)
        else:
            size = SMALL_LIST if is_list_type(get_nullable_type(definition.type)) else 1
        assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
        return size * (1 + self.selection_cost(node.selection_set, named))

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


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    bounds: Bounds,
) -> int | None:
    """The estimated cost of the operation to run, from its arguments and variables as sent; None when there is
    no operation to run (execution refuses that with an error of its own)."""
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
    return _Estimator(schema, fragments, given, bounds).selection_cost(operation.selection_set, root)


def cost_limit_error(cost: int, limit: int) -> GraphQLError:
    return GraphQLError(
        f"the operation's estimated cost {cost} is over the limit of {limit} (TRACKING_GRAPHQL_MAX_COST): select "
        "fewer fields or lists, or page through taskPage (docs/reference/graphql-cost.md)",
        extensions={"code": COST_LIMIT_EXCEEDED, "cost": cost, "limit": limit},
    )


class CostBudget(SchemaExtension):
    """Refuses an operation whose estimated cost is over the budget before anything runs (after parsing and
    validation: the estimate walks a valid document); reports the estimate and the budget of every operation
    it lets run in the answer's `extensions.cost`."""

    def __init__(self) -> None:
        super().__init__()
        self.reported: dict[str, int] = {}

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        if isinstance(context, Context) and execution.graphql_document is not None:
            cost = estimate_cost(
                execution.schema._schema,
                execution.graphql_document,
                execution.operation_name,
                execution.variables,
                Bounds(context.max_traversal),
            )
            if cost is not None:
                if cost > context.max_cost:
                    log.info("GraphQL operation refused: estimated cost %d over %d", cost, context.max_cost)
                    raise cost_limit_error(cost, context.max_cost)
                if execution.operation_type is not OperationType.SUBSCRIPTION:  # not on every event
                    self.reported = {"estimated": cost, "limit": context.max_cost}
        yield

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.reported} if self.reported else {}


def cost_reference() -> str:
    """The table of docs/reference/graphql-cost.md: every field with an estimate of its own, and its rule."""
    rows = [f"| `{type_name}.{name}` | {estimate.described} |" for (type_name, name), estimate in FIELD_SIZES.items()]
    return "\n".join(["| Field | Estimated objects |", "|---|---|", *rows])
