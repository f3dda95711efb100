"""The errors an answer keeps: those whose null it holds. An error is "handled as though the position at which it
occurred resulted in null" (GraphQL, "Handling Execution Errors"), or its nearest nullable ancestor's when the
position is Non-Null. When one field's null lands on an object, graphql-core cancels that object's fields still
running; whether such a field's own error was recorded first is the event loop's order, so the same query gave
different error lists from run to run. An error whose null would land inside an object the answer holds as null
(or does not hold at all) is dropped: it explains no null of the answer, and the answer is the same every run.

Resolving an error's path needs the fields its response keys (aliases) stand for: they are found in the
operation's selections, through fragments, as graphql-core collects them. An error this cannot place (an
abstract type on the way, a path the document does not explain) is kept."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.utilities import get_operation_ast

Path = Sequence[str | int]


def errors_in_answer(
    errors: list[GraphQLError], data: Any, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> list[GraphQLError]:
    """`errors` but those whose null lands where the answer holds none (see the module's docstring). With one
    error, it explains the answer: nothing to drop. With `data` null (a Non-Null root field failed), only the
    errors whose null reaches the root do."""
    if len(errors) < 2:
        return errors
    operation = get_operation_ast(document, operation_name)
    root = schema.get_root_type(operation.operation) if operation is not None else None
    if operation is None or root is None:
        return errors
    fragments = {node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)}
    kept = []
    for error in errors:
        landing = _landing(error.path, root, operation.selection_set, fragments) if error.path else None
        if landing is None or _holds_container_of(data, landing):
            kept.append(error)
    return kept


def _landing(
    path: Path, root: GraphQLObjectType, selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> Path | None:
    """Where the null of an error at `path` lands: the path of its nearest nullable position (the error's own, or
    an ancestor's); None when the document does not explain the path."""
    parent: GraphQLObjectType = root
    sets = [selections]
    nullable_end = 0
    index = 0
    while index < len(path):
        key = path[index]
        fields = [field for field in _collected(sets, parent, fragments) if (field.alias or field.name).value == key]
        if not fields:
            return None
        definition = parent.fields.get(fields[0].name.value)
        if definition is None:  # __typename and the like: a leaf that cannot fail
            return None
        kind = definition.type
        index += 1
        while True:
            if not isinstance(kind, GraphQLNonNull):
                nullable_end = index
            else:
                kind = kind.of_type
            if isinstance(kind, GraphQLList) and index < len(path) and isinstance(path[index], int):
                kind = kind.of_type
                index += 1
                continue
            break
        if index == len(path):
            break
        if not isinstance(kind, GraphQLObjectType):  # an interface or union: its runtime type is not known here
            return None
        parent = kind
        sets = [field.selection_set for field in fields if field.selection_set is not None]
    return path[:nullable_end]


def _collected(
    sets: Sequence[SelectionSetNode], parent: GraphQLObjectType, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of selection sets that apply to `parent`, through inline fragments and fragment spreads."""
    for selection_set in sets:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or condition.name.value == parent.name:
                    yield from _collected([selection.selection_set], parent, fragments)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and fragment.type_condition.name.value == parent.name:
                    yield from _collected([fragment.selection_set], parent, fragments)


def _holds_container_of(data: Any, landing: Path) -> bool:
    """Whether the answer holds the object (or list) a null at `landing` would be in: every step to it present and
    not null. `data` holds every root field when it is not null itself; a null of `data` is always held."""
    if not landing:
        return True
    node = data
    if not isinstance(node, dict):
        return False
    for key in landing[:-1]:
        present = key in node if isinstance(node, dict) else isinstance(key, int) and 0 <= key < len(node)
        if not present:
            return False
        node = node[key]
        if not isinstance(node, dict | list):  # null (or a leaf: the path goes no further in this answer)
            return False
    return True
