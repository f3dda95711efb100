"""Graph store errors as GraphQL errors with a clear message and an `extensions.code`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from graphql import GraphQLError
from pydantic import ValidationError

from models import (
    GraphError,
    IdAllocationFailed,
    InvalidOperation,
    StorageUnavailable,
    TaskAlreadyExists,
    TaskNotFound,
    describe_invalid_fields,
)

CODE_OF_GRAPH_ERROR: dict[type[GraphError], str] = {
    TaskNotFound: "NOT_FOUND",
    TaskAlreadyExists: "CONFLICT",
    InvalidOperation: "BAD_USER_INPUT",
    StorageUnavailable: "UNAVAILABLE",
    IdAllocationFailed: "CONFLICT",
}

_P = ParamSpec("_P")
_T = TypeVar("_T")


def user_error(message: str, code: str = "BAD_USER_INPUT") -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def camel_case(name: str) -> str:
    head, *rest = name.replace("-", "_").split("_")
    return head + "".join(part.title() for part in rest)


def as_graphql_error(error: Exception) -> GraphQLError:
    if isinstance(error, GraphError):
        return user_error(error.message, CODE_OF_GRAPH_ERROR.get(type(error), "BAD_USER_INPUT"))
    if isinstance(error, ValidationError):
        return user_error(describe_invalid_fields(error, rename=camel_case))
    raise error


def graph_errors(resolver: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
    """Resolver decorator: domain and validation errors become GraphQL errors with a code."""

    @functools.wraps(resolver)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await resolver(*args, **kwargs)
        except (GraphError, ValidationError) as error:
            raise as_graphql_error(error) from None

    return wrapper
