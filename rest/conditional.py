"""Conditional requests on /tracking (RFC 9110 section 13): the ETag of every GET answer and of PUT
/tracking/task/{taskId}, and If-Match and If-None-Match on every operation, evaluated in RFC 9110 section
13.2.2's order by models.conditions.evaluate; the fields' grammar is web.etags.

A task's answers carry the ETag of their representation (models.conditions.etag_of: JSON, application/xml and
text/xml each have their own). A write's conditions are evaluated by the store inside the write's transaction,
against the ETags of every representation of task {taskId} (the link operations change that task too); a read's
against the ETag of the representation it answers. A list answer (next, previous, a job's tasks) is a
representation of its own: its ETag is the hash of its media type and body. A failed condition is 412 with the
Error body and the current ETag of the representation the caller negotiated; If-None-Match naming a read's ETag
is 304 with that ETag and no body."""

from __future__ import annotations

from fastapi import Request, Response

from models import Outcome, PreconditionFailed, Preconditions, digest_of, evaluate
from models.conditions import EntityTagCondition
from rest.errors import error_response
from web.etags import parse_entity_tags

_CONDITION_FIELDS = (b"if-match", b"if-none-match")


def _condition(request: Request, name: str) -> EntityTagCondition | None:
    """The field's value, its field lines joined with commas (RFC 9110 section 5.3); InvalidOperation (400)
    naming the field when it is no list of entity tags nor `*`."""
    values = request.headers.getlist(name)
    return parse_entity_tags(", ".join(values), name) if values else None


def preconditions(request: Request) -> Preconditions | None:
    """The request's If-Match and If-None-Match; None when it sends neither (the common case, told without
    building the request's headers)."""
    if not any(name in _CONDITION_FIELDS for name, _ in request.scope["headers"]):
        return None
    return Preconditions(_condition(request, "If-Match"), _condition(request, "If-None-Match"))


def tagged(response: Response, etag: str) -> Response:
    """The answer with the ETag of the representation it carries."""
    response.headers["ETag"] = etag
    return response


def refused_read(request: Request, conditions: Preconditions | None, etag: str, subject: str) -> Response | None:
    """The answer to a GET (or HEAD) whose representation has `etag` when its `conditions` (`preconditions`, read
    before the resource so that a malformed one is 400 as on writes) say not to send it: 304 with the ETag when
    If-None-Match names it, 412 with the Error body and the ETag when If-Match does not; None when the
    representation is to be sent. `subject` names the resource in the 412's message."""
    if conditions is None:
        return None
    outcome = evaluate(conditions, (etag,), safe=True)
    if outcome is Outcome.NOT_MODIFIED:
        return Response(status_code=304, headers={"ETag": etag})
    if outcome.failed:
        message = PreconditionFailed(subject, outcome.value).message
        return error_response(412, message, request.headers.get("accept"), {"ETag": etag})
    return None


def body_etag(response: Response) -> str:
    """The strong ETag of an answer that is not one task (a list): the hash of its media type and its bytes, so
    each representation has its own."""
    digest = digest_of((response.media_type or "").encode(), b"\n", response.body)
    return f'"{digest}"'


def conditional_list(request: Request, conditions: Preconditions | None, response: Response, subject: str) -> Response:
    """A list answer with its ETag, or the 304 or 412 its conditions call for (`refused_read`)."""
    etag = body_etag(response)
    return refused_read(request, conditions, etag, subject) or tagged(response, etag)


def refused_create(request: Request) -> Response | None:
    """POST /tracking/task targets the task collection, which has no current representation (no GET): If-Match
    is false there (RFC 9110 section 13.1.1), so the create is 412; If-None-Match (`*` included) is true."""
    conditions = preconditions(request)
    if conditions is None or evaluate(conditions, None, safe=False) is Outcome.PERFORM:
        return None
    message = "If-Match: /tracking/task has no current version to match (a create takes none), nothing was changed"
    return error_response(412, message, request.headers.get("accept"))
