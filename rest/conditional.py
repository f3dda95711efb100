"""Conditional requests on tasks (RFC 9110 section 13): the `ETag` of GET and PUT /tracking/task/{taskId},
`If-None-Match` on that GET (304 Not Modified), `If-Match` on PUT and DELETE of a task and on its link operations
(412 with the Error body when stale, models.conditions; the fields' grammar is web.etags). The link operations'
If-Match names the task's ETag (the one GET /tracking/task/{taskId} gives), since adding or removing a link
changes that task."""

from __future__ import annotations

from fastapi import Request, Response

from models import TaskDoc, etag_of
from web.etags import EntityTags, parse_entity_tags


def _condition(request: Request, name: str) -> EntityTags | None:
    """The field's value, its field lines joined with commas (RFC 9110 section 5.3); InvalidOperation (400)
    naming the field when it is no list of entity tags nor `*`."""
    values = request.headers.getlist(name)
    return parse_entity_tags(", ".join(values), name) if values else None


def if_match(request: Request) -> EntityTags | None:
    return _condition(request, "If-Match")


def tagged(response: Response, doc: TaskDoc, etag: str | None = None) -> Response:
    """The answer with the ETag of the task it carries (`etag`, when already computed)."""
    response.headers["ETag"] = etag or etag_of(doc)
    return response


def not_modified(request: Request, etag: str) -> Response | None:
    """304 with the task's ETag when If-None-Match names it (weak comparison) or is `*` (RFC 9110 section
    13.1.2: for GET and HEAD), else None."""
    if not any(name == b"if-none-match" for name, _ in request.scope["headers"]):
        return None  # the common case, without building the request's headers
    condition = _condition(request, "If-None-Match")
    if condition is not None and condition.matches_weakly(etag):
        return Response(status_code=304, headers={"ETag": etag})
    return None
