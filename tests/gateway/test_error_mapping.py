"""Every domain error (a subclass of models.GraphError, all in models/errors.py) is answered by both front ends
with a status or code of its own: none falls through to a REST 500 or to GraphQL's catch-all code."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

import models
from gateway.app import create_app
from gateway.settings import load_settings
from graphql_schema.errors import CODE_OF_GRAPH_ERROR, describe_domain_error
from models.errors import GraphError
from tests.helpers import TOKEN


def _domain_errors() -> list[type[GraphError]]:
    found: list[type[GraphError]] = []
    pending = [GraphError]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return sorted(set(found) - {GraphError}, key=lambda kind: kind.__name__)


def _instance(kind: type[GraphError]) -> GraphError:
    """An instance whatever the class's own constructor takes (ids, a cycle, ...)."""
    error = kind.__new__(kind)
    GraphError.__init__(error, f"a {kind.__name__}")
    return error


DOMAIN_ERRORS = _domain_errors()


def test_every_domain_error_lives_in_models_errors_and_is_exported() -> None:
    assert {kind.__name__ for kind in DOMAIN_ERRORS} >= {"TaskNotFound", "GraphCycle", "CursorExpired"}
    for kind in DOMAIN_ERRORS:
        assert kind.__module__ == "models.errors", kind
        assert getattr(models, kind.__name__) is kind


@pytest.mark.parametrize("kind", DOMAIN_ERRORS, ids=lambda kind: kind.__name__)
async def test_rest_answers_each_domain_error_with_its_own_status(kind: type[GraphError], tmp_path: Path) -> None:
    app = create_app(load_settings(api_tokens=TOKEN, data_dir=tmp_path))
    # Starlette picks the handler of the nearest class in the error's MRO (as here); without one it is a 500.
    handler = next((app.exception_handlers[base] for base in kind.__mro__ if base in app.exception_handlers), None)
    assert handler is not None, f"{kind.__name__} has no REST status"
    request = Request({"type": "http", "method": "GET", "path": "/tracking/task/1", "headers": []})
    response = await handler(request, _instance(kind))  # type: ignore[misc]
    assert 400 <= response.status_code < 600 and response.status_code != 500, response.status_code
    assert f"a {kind.__name__}".encode() in response.body


@pytest.mark.parametrize("kind", DOMAIN_ERRORS, ids=lambda kind: kind.__name__)
def test_graphql_answers_each_domain_error_with_its_own_code(kind: type[GraphError]) -> None:
    mapped = [CODE_OF_GRAPH_ERROR[base] for base in kind.__mro__ if base in CODE_OF_GRAPH_ERROR]
    assert mapped, f"{kind.__name__} has no GraphQL code"
    assert describe_domain_error(_instance(kind)) == (f"a {kind.__name__}", mapped[0])
