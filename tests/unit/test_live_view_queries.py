"""The GraphQL documents the live view sends (ui/queries.js, as node imports it) against the gateway's schema:
each one valid, the subscription included, and each named for what it asks, so that a field or an argument
renamed in the schema fails here, not first in a browser."""

from __future__ import annotations

import pytest
from graphql import OperationDefinitionNode, parse, validate

from gateway.settings import load_settings
from graphql_schema.schema import build_schema
from tests.helpers import live_view_documents

SETTINGS = load_settings()
SCHEMA = build_schema(SETTINGS.graphql_max_depth, SETTINGS.graphql_max_aliases, SETTINGS.graphql_max_tokens)._schema
DOCUMENTS = live_view_documents()


def test_every_document_the_page_sends_is_read() -> None:
    """Queries, the subscription and the page size the table asks for (so a module that stopped exporting them
    cannot leave the tests with nothing to check)."""
    assert {"JOBS", "JOB_HEAD", "JOB_GRAPH", "TASK_PAGE", "LEVELS", "DETAILS", "NEIGHBOURHOOD", "CURSOR", "EVENTS"} <= (
        DOCUMENTS.keys()
    )
    assert "first: 100," in DOCUMENTS["TASK_PAGE"], "the page size written into the document by the module"
    assert "${" not in "".join(DOCUMENTS.values()), "every template literal written out"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_each_document_is_one_named_operation_valid_against_the_schema(name: str) -> None:
    document = parse(DOCUMENTS[name])
    assert validate(SCHEMA, document) == []
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode) and operation.name is not None, "named: the logs say which"
