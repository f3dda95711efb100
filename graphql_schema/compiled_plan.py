"""Which GraphQL operations the compiled path answers (graphql_schema.compiled), as a plan built from the parsed
and validated document alone, before anything is read.

The plan is a whitelist of shapes (`SHAPES`): every field of a selection must be listed for its shape, and only
the fields in `WITH_ARGUMENTS` may take arguments (coerced as graphql-core coerces them: variables and defaults).
It covers what dashboards ask: `Query.job(id)` with its counts, summary, whole-job `tasks` (with its filters) and
`roots` (from one read, projected to the fields selected when they are stored ones), `edges`, `criticalPath`,
`taskPage` and `levels`; `Query.jobs` with each job's counts and summary; `Query.task(id)` with every Task field,
its walks (`nexts`, `previous`, `descendants`, `ancestors`, `blockedBy`, with their arguments) nested as deep as
the depth bound lets them, `history`, `historyTruncated` and `etag`; `Query.doneStatuses` and
`Query.eventCursor`; `__typename` anywhere. Anything else (another field, an argument elsewhere, a directive, a
response key given twice, a variable that does not coerce) is `NotCompiled`: graphql-core answers the operation
field by field, as without this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from graphql_schema.errors import camel_case
from graphql_schema.fields import STORED_NAMES

TASK_FIELDS = {"id": "id", **{camel_case(python): stored for python, stored in STORED_NAMES.items()}}
"""A Task's scalar fields: GraphQL name -> stored name (`id` stands for `_id`, served as a string)."""
TYPENAME = "__typename"
WALKS = ("nexts", "previous", "descendants", "ancestors", "blockedBy")
"""Task fields that lead to other tasks."""


class NotCompiled(Exception):
    """The operation (or an answer being built) is not for the compiled path: graphql-core answers it."""


_TASK_SCALARS: dict[str, str | None] = dict.fromkeys([*TASK_FIELDS, TYPENAME])
_COUNTS: dict[str, str | None] = {
    "id": None,
    "taskCount": None,
    "statusCounts": "StatusCount",
    "summary": "JobSummary",
    TYPENAME: None,
}
SHAPES: dict[str, tuple[str, dict[str, str | None]]] = {
    "Query": (
        "Query",
        {
            "job": "Job",
            "jobs": "JobConnection",
            "task": "Task",
            "doneStatuses": None,
            "eventCursor": None,
            TYPENAME: None,
        },
    ),
    "Job": (
        "Job",
        {
            **_COUNTS,
            "tasks": "Task",
            "roots": "Task",
            "edges": "Edge",
            "criticalPath": "Task",
            "taskPage": "TaskConnection",
            "levels": "JobLevel",
        },
    ),
    "Task": (
        "Task",
        {
            **_TASK_SCALARS,
            "etag": None,
            "history": "TaskChange",
            "historyTruncated": None,
            **dict.fromkeys(WALKS, "Task"),
        },
    ),
    "Edge": ("Edge", dict.fromkeys(["from", "to", TYPENAME])),
    "StatusCount": ("StatusCount", dict.fromkeys(["status", "count", TYPENAME])),
    "JobSummary": (
        "JobSummary",
        dict.fromkeys(["firstStart", "lastFinish", "lastUpdate", "durationMs", "doneCount", "progress", TYPENAME]),
    ),
    "TaskConnection": ("TaskConnection", {"edges": "TaskEdge", "pageInfo": "PageInfo", TYPENAME: None}),
    "TaskEdge": ("TaskEdge", {"cursor": None, "node": "Task", TYPENAME: None}),
    "PageInfo": ("PageInfo", dict.fromkeys(["hasNextPage", "endCursor", TYPENAME])),
    "JobLevel": (
        "JobLevel",
        {"depth": None, "count": None, "blockedCount": None, "statusCounts": "StatusCount", TYPENAME: None},
    ),
    "JobConnection": ("JobConnection", {"edges": "JobEdge", "pageInfo": "PageInfo", TYPENAME: None}),
    "JobEdge": ("JobEdge", {"cursor": None, "node": "JobCounts", TYPENAME: None}),
    "JobCounts": ("Job", _COUNTS),
    "TaskChange": ("TaskChange", dict.fromkeys(["cursor", "at", "kind", "changedFields", "status", TYPENAME])),
}
"""Shape -> (GraphQL type, {field: the shape of its value, None for a leaf}). A job of Query.jobs is `JobCounts`
(its counts and summary, from one aggregation for the page)."""

WITH_ARGUMENTS = frozenset(
    {
        ("Query", "job"),
        ("Query", "jobs"),
        ("Query", "task"),
        ("Query", "eventCursor"),
        ("Job", "tasks"),
        ("Job", "taskPage"),
        ("Task", "history"),
        ("Task", "historyTruncated"),
        *(("Task", name) for name in WALKS),
    }
)


@dataclass(frozen=True)
class Field:
    """A selected field: its response key, name, coerced arguments (by GraphQL argument name) and, for an
    object or a list of objects, the fields selected in it (None for a leaf)."""

    key: str
    name: str
    arguments: Mapping[str, Any]
    fields: tuple[Field, ...] | None = None
    node: FieldNode | None = field(default=None, compare=False)
    """Where the document selects it (what graphql_schema.cost_meter charges a metered list to)."""

    def leaves(self) -> list[tuple[str, str]]:
        """(key, name) of the selected fields (of a selection of leaves)."""
        return [(field.key, field.name) for field in self.fields or ()]


def children(field: Field) -> tuple[Field, ...]:
    """The fields selected in an object field; NotCompiled for a leaf (an answer expecting an object)."""
    if field.fields is None:
        raise NotCompiled(f"{field.name}: a leaf")
    return field.fields


@dataclass
class _Walk:
    """What the walk over one operation's selections needs: its fragments, schema and coerced variables."""

    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: VariableValues

    def select(self, selection_set: SelectionSetNode | None, shape: str) -> tuple[Field, ...]:
        """The fields of a selection of `shape`, in response order; NotCompiled for any field not in it."""
        type_name, allowed = SHAPES[shape]
        graphql_type = self.schema.type_map[type_name]
        assert isinstance(graphql_type, GraphQLObjectType)
        selected = []
        for node in self.fields(selection_set, type_name):
            name = node.name.value
            if name not in allowed:
                raise NotCompiled(f"{type_name}.{name}")
            if node.arguments and (shape, name) not in WITH_ARGUMENTS:
                raise NotCompiled(f"{type_name}.{name} with arguments")
            arguments = get_argument_values(graphql_type.fields[name], node, self.variables) if name != TYPENAME else {}
            child = allowed[name]
            fields = self.select(node.selection_set, child) if child is not None else None
            selected.append(Field(_key(node), name, arguments, fields, node))
        return tuple(selected)

    def fields(self, selection_set: SelectionSetNode | None, type_name: str) -> list[FieldNode]:
        """The fields of a selection in response order through fragments (graphql-core's collect_fields), each
        response key once, where it first appears; NotCompiled for a directive, a fragment on another type or an
        object field selected twice (graphql-core merges their selections). A scalar selected twice under one key
        (`id … on Task { id }`) is the same field: validation (OverlappingFieldsCanBeMerged, GraphQL spec §5.3.2)
        has made sure of it before."""
        unique: dict[str, FieldNode] = {}
        for node in self._collect(selection_set, type_name):
            first = unique.setdefault(_key(node), node)
            if first is not node and (first.selection_set is not None or node.selection_set is not None):
                raise NotCompiled("an object field selected twice: graphql-core merges those")
        return list(unique.values())

    def _collect(self, selection_set: SelectionSetNode | None, type_name: str) -> list[FieldNode]:
        if selection_set is None:
            raise NotCompiled("an object field without a selection")
        found: list[FieldNode] = []
        for selection in selection_set.selections:
            if selection.directives:
                raise NotCompiled("a directive")
            if isinstance(selection, FieldNode):
                found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is not None and condition.name.value != type_name:
                    raise NotCompiled("a fragment on another type")
                found += self._collect(selection.selection_set, type_name)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None or fragment.directives or fragment.type_condition.name.value != type_name:
                    raise NotCompiled("a fragment on another type")
                found += self._collect(fragment.selection_set, type_name)
        return found


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias is not None else node.name.value


def plan(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: dict[str, Any] | None
) -> tuple[Field, ...]:
    """The root fields of the operation to run, in response order; NotCompiled when the compiled path does not
    answer it (see the module's docstring)."""
    operation = get_operation_ast(document, operation_name)
    if not isinstance(operation, OperationDefinitionNode) or operation.operation is not OperationType.QUERY:
        raise NotCompiled("not a query")
    if operation.directives:
        raise NotCompiled("a directive")
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(coerced, list):
        raise NotCompiled("variables that do not coerce")
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    return _Walk(schema, fragments, coerced).select(operation.selection_set, "Query")
