"""GraphQL over HTTP, as the GraphQL-over-HTTP specification (graphql.github.io/graphql-over-http) has it: the
response media type by Accept, the status of each answer, and the body of a request error."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from fastapi import Response

from web.negotiation import media_ranges, preference

GRAPHQL_RESPONSE_TYPE = "application/graphql-response+json"
JSON_TYPE = "application/json"
CONTENT_TYPE_OF = {GRAPHQL_RESPONSE_TYPE: f"{GRAPHQL_RESPONSE_TYPE}; charset=utf-8", JSON_TYPE: JSON_TYPE}

STATUS_OF_CODE = {"FORBIDDEN": 403, "INTERNAL_SERVER_ERROR": 500, "UNAVAILABLE": 503}
"""The status of an answer without `data` under application/graphql-response+json (4xx or 5xx, §Status
Codes), by its first error's code; any other code (a request the caller got wrong) is 400."""


class NotAcceptable(Exception):
    """The caller accepts neither GraphQL response media type (406)."""


def response_media_type(accept: str | None) -> str:
    """The media type of the answer. No Accept: application/json, what such clients have always got (the
    specification lets a server keep that default after its 2025-01-01 watershed, and existing dashboards must
    notice nothing). Otherwise the supported type with the higher q; on a tie the one named
    explicitly rather than by a wildcard, then the one named first; `*/*` or `application/*` alone gives
    application/json, what such clients have always got. Neither acceptable: NotAcceptable."""
    ranges = media_ranges(accept or "")
    if not ranges:  # no Accept, an empty one, or one of empty list elements (`,`: RFC 9110 section 5.6.1)
        return JSON_TYPE
    modern, legacy = preference(ranges, GRAPHQL_RESPONSE_TYPE), preference(ranges, JSON_TYPE)
    if modern[0] == 0 and legacy[0] == 0:
        raise NotAcceptable(
            f"cannot answer with {accept!r}: accept {GRAPHQL_RESPONSE_TYPE} or {JSON_TYPE} (GraphQL over HTTP)"
        )
    if modern[:2] != legacy[:2]:
        return GRAPHQL_RESPONSE_TYPE if modern[:2] > legacy[:2] else JSON_TYPE
    return GRAPHQL_RESPONSE_TYPE if modern[1] == 2 and modern[2] < legacy[2] else JSON_TYPE


def response_media_type_or_json(accept: str | None) -> str:
    """For refusals: the negotiated media type, or application/json when the caller accepts neither."""
    try:
        return response_media_type(accept)
    except NotAcceptable:
        return JSON_TYPE


def status_without_data(errors: list[object]) -> int:
    """The status of an answer whose execution never started, under application/graphql-response+json."""
    first = errors[0] if errors else None
    extensions = first.get("extensions") if isinstance(first, dict) else None
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return STATUS_OF_CODE.get(code, 400) if isinstance(code, str) else 400


def error_response(
    status: int, message: str, code: str, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A request refused before any execution: `{"errors": [{"message", "extensions": {"code"}}]}`, no `data`
    (GraphQL spec §7.1.2: no data entry when execution did not start)."""
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    negotiated = {"Vary": "Accept", **(headers or {})}  # the media type is Accept's choice (RFC 9110 section 12.5.5)
    return Response(body, status_code=status, media_type=CONTENT_TYPE_OF[media_type], headers=negotiated)
