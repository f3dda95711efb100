"""GraphQL at /graphql: the task graph in one query, mutations, and live task events."""

from fastapi import FastAPI

from graphql_schema.router import graphql_router


def install(app: FastAPI, *, max_depth: int, max_aliases: int, max_tokens: int) -> None:
    app.include_router(graphql_router(max_depth, max_aliases, max_tokens))


__all__ = ["install"]
