"""GraphQL at /graphql: the task graph in one query, mutations, and live task events."""

from fastapi import FastAPI

from graphql_schema.credentials import install_repeated_credential_refusal
from graphql_schema.http import error_response, response_media_type_or_json
from graphql_schema.router import graphql_router, install_token_refusal
from web.limits import RequestLimits
from web.paths import GRAPHQL_PATH


def install(
    app: FastAPI, *, max_depth: int, max_aliases: int, max_tokens: int, max_fragment_depth: int, limits: RequestLimits
) -> None:
    app.include_router(graphql_router(max_depth, max_aliases, max_tokens, max_fragment_depth, limits))
    install_token_refusal(app)
    install_repeated_credential_refusal(app)


__all__ = ["GRAPHQL_PATH", "error_response", "install", "response_media_type_or_json"]
