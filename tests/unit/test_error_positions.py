"""Which errors an answer keeps (graphql_schema.error_positions): those whose null it holds."""

from __future__ import annotations

from graphql import GraphQLError, build_schema, parse

from graphql_schema.error_positions import errors_in_answer

SCHEMA = build_schema(
    """
    type Query { job(id: String!): Job  task(id: String!): Task }
    type Job { page: Page!  critical: [Task!]  tasks: [Task]! }
    type Page { edges: [Edge!]! }
    type Edge { node: Task! }
    type Task { id: ID!  done: Boolean!  note: String }
    """
)
DOCUMENT = parse(
    """
    query Q { j: job(id: "a") { page { edges { node { ...T } } } critical { id } ... on Job { tasks { note } } }
              task(id: "b") { note } }
    fragment T on Task { id done }
    """
)


Path = list[str | int]


def kept(data: dict, *paths: Path) -> list[Path]:
    errors = [GraphQLError("x", path=path) for path in paths]
    return [error.path for error in errors_in_answer(errors, data, SCHEMA, DOCUMENT, "Q") if error.path is not None]


def test_an_error_inside_an_object_another_errors_null_landed_on_is_dropped() -> None:
    propagated: Path = ["j", "page", "edges", 0, "node", "done"]  # Non-Null up to `j`: its null lands there
    inside: Path = ["j", "critical"]  # nullable: its null would land inside `j`, which the answer holds as null
    assert kept({"j": None, "task": None}, propagated, inside) == [propagated]


def test_errors_whose_nulls_the_answer_holds_are_all_kept() -> None:
    data = {"j": {"page": {"edges": []}, "critical": None, "tasks": [{"note": None}]}, "task": {"note": None}}
    paths: tuple[Path, ...] = (["j", "critical"], ["j", "tasks", 0, "note"], ["task", "note"])
    assert kept(data, *paths) == list(paths)


def test_a_null_list_item_holds_its_error_and_a_fragments_fields_are_found() -> None:
    data: dict = {"j": {"page": {"edges": []}, "critical": None, "tasks": [None]}, "task": None}
    item: Path = ["j", "tasks", 0, "note"]  # nullable String: lands on the note, inside the item, which is null
    own: Path = ["j", "tasks", 0]  # the item itself (nullable Task): held
    assert kept(data, item, own) == [own]
    unknown: Path = ["nowhere", "at", "all"]  # a path the document does not explain: kept
    assert kept(data, own, unknown) == [own, unknown]


def test_with_data_null_only_the_errors_whose_null_reaches_the_root_are_kept() -> None:
    schema = build_schema("type Query { jobs: [Job!]!  job(id: String!): Job } type Job { critical: [Job!] }")
    document = parse(
        'query Q { jobs { critical { critical { __typename } } } a: job(id: "x") { critical { __typename } } }'
    )
    root_error = GraphQLError("x", path=["jobs"])  # Non-Null: its null is `data`'s
    other = GraphQLError("y", path=["a", "critical"])  # nullable: its null would be in `data`, which is null
    assert errors_in_answer([root_error, other], None, schema, document, "Q") == [root_error]
