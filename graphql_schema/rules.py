"""Validation rules beside Strawberry's bounds: introspection bounded like any selection, a document of several
operations run only by name, and the alias bound refused with a message naming its setting."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from graphql import GraphQLError, ValidationRule
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.language.visitor import SKIP
from strawberry.extensions.max_aliases import count_fields_with_alias

from graphql_schema.errors import OPERATION_RESOLUTION_FAILURE

REQUESTED_OPERATION: ContextVar[str | None] = ContextVar("requested_operation", default=None)
"""The operationName the caller sent with the document being run, set by the schema for each run (in the
task that runs it). Strawberry's execution context falls back to the first operation's name when none was
sent, so without this a rule cannot tell "none sent" from "the first one named"."""

INTROSPECTION_QUERY_DEPTH = 14
"""The depth of the standard introspection query (graphql-js's getIntrospectionQuery, which GraphiQL and
client generators send): __schema, types, fields, args, type, then nine levels of ofType, counted as
Strawberry's QueryDepthLimiter counts (the root fields are at depth 0)."""


class OneOperationOrAName(ValidationRule):
    """A document of several operations needs operationName (GraphQL spec §6.1 GetOperation: "Otherwise
    raise a request error requiring operationName"), rather than running the first one."""

    def enter_document(self, node: DocumentNode, *_: Any) -> object:
        operations = [item for item in node.definitions if isinstance(item, OperationDefinitionNode)]
        if len(operations) > 1 and not REQUESTED_OPERATION.get():
            names = ", ".join(item.name.value if item.name else "an anonymous one" for item in operations)
            self.report_error(
                GraphQLError(
                    f"the document holds {len(operations)} operations ({names}): name the one to run with "
                    "operationName",
                    operations,
                    extensions={"code": OPERATION_RESOLUTION_FAILURE},
                )
            )
        return SKIP


def _fields(
    selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str]
) -> Iterator[tuple[FieldNode, frozenset[str]]]:
    """The fields of a selection set, through fragments (each fragment once per path: cycles are another
    rule's error)."""
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection, seen
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                yield from _fields(fragments[name].selection_set, fragments, seen | {name})


def _depth(selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str]) -> int:
    """How deep the deepest field below a field with these selections lies (its children are at 1)."""
    return max(
        (
            1 + (_depth(field.selection_set, fragments, within) if field.selection_set else 0)
            for field, within in _fields(selections, fragments, seen)
        ),
        default=0,
    )


def introspection_depth_rule(max_depth: int) -> type[ValidationRule]:
    """Strawberry's QueryDepthLimiter skips every `__` field, so a `__schema`/`__type` selection could nest as
    deep as the caller likes: bound it by `max_depth` too, and never below the standard introspection query's
    depth, so GraphiQL and client generators keep working whatever TRACKING_GRAPHQL_MAX_DEPTH says. And one
    `__schema` per operation: it costs 1 in the cost estimate (it reads no data), yet each alias of it is the
    whole schema computed again (a document of aliased `__schema`s within TRACKING_GRAPHQL_MAX_ALIASES held the
    event loop for over a second); every standard introspection query selects it once."""
    bound = max(max_depth, INTROSPECTION_QUERY_DEPTH)

    class IntrospectionDepth(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> object:
            definitions = self.context.document.definitions
            fragments = {item.name.value: item for item in definitions if isinstance(item, FragmentDefinitionNode)}
            name = node.name.value if node.name else "anonymous"
            schemas = {
                (field.alias or field.name).value  # fields under one response key are merged, run once
                for field, _ in _fields(node.selection_set, fragments, frozenset())
                if field.name.value == "__schema"
            }
            if len(schemas) > 1:
                self.report_error(
                    GraphQLError(
                        f"'{name}' selects __schema {len(schemas)} times, under aliases: each is the whole schema, "
                        "computed again; select it once"
                    )
                )
            for field, seen in _fields(node.selection_set, fragments, frozenset()):
                introspection = field.name.value.startswith("__")
                if introspection and field.selection_set and _depth(field.selection_set, fragments, seen) > bound:
                    self.report_error(
                        GraphQLError(
                            f"'{name}' exceeds maximum introspection depth of {bound} (TRACKING_GRAPHQL_MAX_DEPTH, "
                            f"and never below {INTROSPECTION_QUERY_DEPTH}, the standard introspection query's)",
                            [field],
                        )
                    )
            return SKIP

    return IntrospectionDepth


ALIASES_SETTING = "TRACKING_GRAPHQL_MAX_ALIASES"


def alias_bound_rule(max_aliases: int) -> type[ValidationRule]:
    """At most `max_aliases` aliases in a document, counted as Strawberry's MaxAliasesLimiter counts them (every
    operation, each fragment as often as it is spread), refused with a message naming the setting, as every other
    bound's is."""

    class AliasBound(ValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> object:
            fragments = {item.name.value: item for item in node.definitions if isinstance(item, FragmentDefinitionNode)}
            operations = [item for item in node.definitions if isinstance(item, OperationDefinitionNode)]
            found = sum(count_fields_with_alias(operation, fragments) for operation in operations)
            if found > max_aliases:
                self.report_error(
                    GraphQLError(
                        f"the document holds {found} aliases, more than {max_aliases} ({ALIASES_SETTING}): select "
                        "fewer fields under aliases, or send several requests"
                    )
                )
            return SKIP

    return AliasBound
