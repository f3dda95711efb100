"""Documents nested deeper than validation can walk, refused before it starts.

The parser bounds the nesting within one definition (graphql-core's MAX_NESTING_DEPTH), but fragment spreads
chain definitions: `...A` spreads A, which spreads B, and so on, and the validation rules (Strawberry's
QueryDepthLimiter first, in its constructor) follow them recursively: a long enough chain overflowed
Python's recursion limit and was answered `maximum recursion depth exceeded`, without a code. So before
validation, one iterative walk over the parsed document measures each operation and fragment, and refuses a
document past any of these bounds with a coded error naming it:

- the chain: TRACKING_GRAPHQL_MAX_FRAGMENT_DEPTH (`A` spreading `B` spreading `C`: 3);
- the nesting through fragments: the parser's own bound within one definition, now across definitions;
- the fields once every spread is expanded: TRACKING_GRAPHQL_MAX_TOKENS, the bound on a document written out.
  A chain of fragments each spreading the next one twice is a short document whose size doubles with each
  link once spread, and the rules (following every spread, without memory) walk all of it while the event
  loop waits; each fragment is measured once here, so the walk stays linear in the document's size.

A spread closing a cycle adds nothing here: the validation rules report cycles (and follow none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    SelectionSetNode,
)
from graphql.language.parser import MAX_NESTING_DEPTH
from strawberry.extensions import SchemaExtension

FRAGMENT_DEPTH_SETTING = "TRACKING_GRAPHQL_MAX_FRAGMENT_DEPTH"
TOKENS_SETTING = "TRACKING_GRAPHQL_MAX_TOKENS"


@dataclass(frozen=True)
class _Shape:
    """What one definition holds: how deep its own selections nest, and each spread with the depth it is at."""

    nesting: int
    spreads: list[tuple[str, int]]
    fields: int


@dataclass(frozen=True)
class _Reach:
    """What a definition reaches through its spreads: selection nesting, the longest chain of fragments (the
    definition itself first when it is a fragment), and how many fields it holds with every spread expanded."""

    nesting: int
    chain: list[str]
    fields: int


def _shape(selection_set: SelectionSetNode) -> _Shape:
    nesting = fields = 0
    spreads: list[tuple[str, int]] = []
    stack = [(selection_set, 1)]
    while stack:
        selections, depth = stack.pop()
        nesting = max(nesting, depth)
        for selection in selections.selections:
            if isinstance(selection, FragmentSpreadNode):
                spreads.append((selection.name.value, depth))
                continue
            fields += isinstance(selection, FieldNode)
            if (nested := getattr(selection, "selection_set", None)) is not None:
                stack.append((nested, depth + 1))
    return _Shape(nesting, spreads, fields)


def _reaches(fragments: dict[str, _Shape]) -> dict[str, _Reach]:
    """Each fragment's reach, computed without recursion: a depth-first walk over the spreads, each fragment
    finished once all it spreads are (a spread back onto the walk's path counts as nothing)."""
    reach: dict[str, _Reach] = {}
    for root in fragments:
        if root in reach:
            continue
        path: list[tuple[str, Iterator[tuple[str, int]]]] = [(root, iter(fragments[root].spreads))]
        on_path = {root}
        while path:
            name, spreads = path[-1]
            for spread, _ in spreads:
                if spread in fragments and spread not in reach and spread not in on_path:
                    path.append((spread, iter(fragments[spread].spreads)))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                inner = _through(fragments[name], reach)
                reach[name] = _Reach(inner.nesting, [name, *inner.chain], inner.fields)
    return reach


def _through(shape: _Shape, reach: dict[str, _Reach]) -> _Reach:
    """The reach of a definition of this shape, given that of the fragments it spreads."""
    nesting, chain, fields = shape.nesting, list[str](), shape.fields
    for spread, depth in shape.spreads:
        known = reach.get(spread)
        if known is not None:
            nesting = max(nesting, depth + known.nesting)
            fields += known.fields
            if len(known.chain) > len(chain):
                chain = known.chain
    return _Reach(nesting, chain, fields)


def _name(definition: ExecutableDefinitionNode) -> str:
    if isinstance(definition, FragmentDefinitionNode):
        return f"fragment '{definition.name.value}'"
    return f"'{definition.name.value}'" if definition.name else "'anonymous'"


def _chain(names: list[str]) -> str:
    shown = names if len(names) <= 6 else [*names[:3], "…", *names[-2:]]
    return " -> ".join(shown)


def nesting_problem(document: DocumentNode, max_fragment_depth: int, max_fields: int) -> GraphQLError | None:
    """A coded error for the first definition of `document` past a bound of the module's, or None."""
    definitions = [item for item in document.definitions if isinstance(item, ExecutableDefinitionNode)]
    fragments = {
        item.name.value: _shape(item.selection_set) for item in definitions if isinstance(item, FragmentDefinitionNode)
    }
    reach = _reaches(fragments)
    for definition in definitions:
        if isinstance(definition, FragmentDefinitionNode):
            found = reach[definition.name.value]
        else:
            found = _through(_shape(definition.selection_set), reach)
        chain = found.chain
        if len(chain) > max_fragment_depth:
            return _refusal(
                f"{_name(definition)} nests fragment spreads {len(chain)} deep ({_chain(chain)}), more than "
                f"{max_fragment_depth} ({FRAGMENT_DEPTH_SETTING})",
                definition,
            )
        if found.fields > max_fields:
            return _refusal(
                f"{_name(definition)} holds {found.fields} fields once its fragments are spread, more than "
                f"{max_fields} ({TOKENS_SETTING}: spreading fragments may not make a document larger than one "
                "written out within it)",
                definition,
            )
        if found.nesting > MAX_NESTING_DEPTH:
            return _refusal(
                f"{_name(definition)} nests selections {found.nesting} deep through its fragments, more than the "
                f"{MAX_NESTING_DEPTH} the GraphQL parser allows within one definition",
                definition,
            )
    return None


def _refusal(message: str, definition: ExecutableDefinitionNode) -> GraphQLError:
    return GraphQLError(message, [definition], extensions={"code": "GRAPHQL_VALIDATION_FAILED"})


def fragment_nesting_bound(max_fragment_depth: int, max_fields: int) -> Callable[[], SchemaExtension]:
    """The extension refusing over-nested or over-expanding documents (a factory: one per request)."""

    class FragmentNesting(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            execution = self.execution_context
            document = execution.graphql_document
            if document is not None and execution.pre_execution_errors is None:
                problem = nesting_problem(document, max_fragment_depth, max_fields)
                if problem is not None:
                    # Strawberry's validation runs only while this is None: the rules never walk the document.
                    execution.pre_execution_errors = [problem]
            yield

    return FragmentNesting
