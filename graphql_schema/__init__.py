"""GraphQL at /graphql: the task graph in one query, mutations, and live task events."""

from fastapi import FastAPI

from graphql_schema.router import graphql_router
from models import Limits


def install(app: FastAPI, *, max_depth: int, max_aliases: int, max_tokens: int, limits: Limits) -> None:
    app.include_router(graphql_router(max_depth, max_aliases, max_tokens, limits))


__all__ = ["install"]
