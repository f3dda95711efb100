"""Which GraphQL operations the compiled path answers (graphql_schema.compiled), as a plan built from the parsed
and validated document alone, before anything is read.

The plan is a whitelist: `Query.job(id)` with its `id`, `tasks`, `edges`, `statusCounts`, `taskCount`,
`summary` and `criticalPath` (without arguments), `Query.task(id)` and `Query.doneStatuses`, with a task's
scalar fields and `__typename` anywhere. Anything else (another field, an argument on a whole-job field, a
directive, a response key given twice, a variable that does not coerce) is `NotCompiled`: graphql-core answers
the operation field by field, as without this module.
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

JOB_SCALARS = frozenset({"id", "taskCount", TYPENAME})
EDGE_FIELDS = frozenset({"from", "to", TYPENAME})
STATUS_COUNT_FIELDS = frozenset({"status", "count", TYPENAME})
SUMMARY_FIELDS = frozenset({"firstStart", "lastFinish", "lastUpdate", "durationMs", "doneCount", "progress", TYPENAME})


class NotCompiled(Exception):
    """The operation (or an answer being built) is not for the compiled path: graphql-core answers it."""


Leaves = list[tuple[str, str]]
"""(response key, field name) of a selection of leaf fields, in response order."""


@dataclass(frozen=True)
class JobField:
    key: str
    name: str
    leaves: Leaves = field(default_factory=list)
    """For tasks and criticalPath: (key, stored name or `id` or __typename); else (key, GraphQL field name)."""


@dataclass(frozen=True)
class RootField:
    key: str
    name: str
    argument: Any = None
    job: list[JobField] = field(default_factory=list)
    task: Leaves = field(default_factory=list)


@dataclass
class _Walk:
    """What the walk over one operation's selections needs: its fragments, schema and coerced variables."""

    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: VariableValues

    def fields(self, selection_set: SelectionSetNode | None, type_name: str) -> list[FieldNode]:
        """The fields of a selection in response order through fragments (graphql-core's collect_fields), each
        response key once; NotCompiled for a directive, a fragment on another type or a key given twice."""
        found = self._collect(selection_set, type_name)
        keys = [_key(node) for node in found]
        if len(set(keys)) != len(keys):
            raise NotCompiled("a response key selected twice: graphql-core merges those")
        return found

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

    def leaves(self, node: FieldNode, type_name: str, names: Mapping[str, str] | frozenset[str]) -> Leaves:
        """(key, name) of a selection of leaf fields among `names` (mapped when `names` is a mapping)."""
        chosen: Leaves = []
        for child in self.fields(node.selection_set, type_name):
            _refuse_arguments(child)
            name = child.name.value
            if name not in names:
                raise NotCompiled(f"{type_name}.{name}")
            chosen.append((_key(child), names[name] if isinstance(names, Mapping) else name))
        return chosen

    def argument(self, node: FieldNode, field_name: str, argument: str) -> Any:
        """An argument's value as graphql-core coerces it (variables and defaults included)."""
        query_type = self.schema.query_type
        assert query_type is not None
        return get_argument_values(query_type.fields[field_name], node, self.variables)[argument]


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias is not None else node.name.value


def _refuse_arguments(node: FieldNode) -> None:
    if node.arguments:
        raise NotCompiled(f"{node.name.value} with arguments")


def _task_leaves(walk: _Walk, node: FieldNode) -> Leaves:
    return walk.leaves(node, "Task", {**TASK_FIELDS, TYPENAME: TYPENAME})


def _job_field(walk: _Walk, node: FieldNode) -> JobField:
    _refuse_arguments(node)
    name, key = node.name.value, _key(node)
    if name in JOB_SCALARS:
        return JobField(key, name)
    if name in ("tasks", "criticalPath"):
        return JobField(key, name, _task_leaves(walk, node))
    if name == "edges":
        return JobField(key, name, walk.leaves(node, "Edge", EDGE_FIELDS))
    if name == "statusCounts":
        return JobField(key, name, walk.leaves(node, "StatusCount", STATUS_COUNT_FIELDS))
    if name == "summary":
        return JobField(key, name, walk.leaves(node, "JobSummary", SUMMARY_FIELDS))
    raise NotCompiled(f"Job.{name}")


def _root_field(walk: _Walk, node: FieldNode) -> RootField:
    name, key = node.name.value, _key(node)
    if name in (TYPENAME, "doneStatuses"):
        return RootField(key, name)
    if name == "job":
        job_id = walk.argument(node, "job", "id")
        return RootField(
            key, name, job_id, job=[_job_field(walk, child) for child in walk.fields(node.selection_set, "Job")]
        )
    if name == "task":
        return RootField(key, name, walk.argument(node, "task", "id"), task=_task_leaves(walk, node))
    raise NotCompiled(f"Query.{name}")


def plan(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: dict[str, Any] | None
) -> list[RootField]:
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
    walk = _Walk(schema, fragments, coerced)
    return [_root_field(walk, node) for node in walk.fields(operation.selection_set, "Query")]
