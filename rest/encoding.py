"""JSON on the wire, and the API's view of a stored task: response encoding (JSON or XML) and JSON request
bodies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from models import NAVIGABLE_TYPES, RESPONSE_FIELD_ORDER, TaskDoc, format_datetime, shown_next_ids
from rest.negotiation import BadRequest, Format
from rest.xml import xml_document

_API_FIELDS = frozenset(RESPONSE_FIELD_ORDER) - {"id"}


def task_to_api(doc: TaskDoc, linked: Mapping[int, TaskDoc] | None = None) -> dict[str, Any]:
    """A stored task as the API shows it. A navigable task carries its next tasks one level deep, taken from
    `linked` (their own nexts are not expanded)."""
    out: dict[str, Any] = {"id": doc["_id"]}
    # In stored order (the API's order for tasks the gateway wrote); walking the document rather than the
    # thirty-odd field names matters on lists of thousands of tasks.
    for name, value in doc.items():
        if value is None or name not in _API_FIELDS:
            continue
        out[name] = format_datetime(value) if isinstance(value, datetime) else value
    if linked is not None and doc.get("type") in NAVIGABLE_TYPES:
        out["nexts"] = {"tasks": [task_to_api(linked[i]) for i in shown_next_ids(doc) if i in linked]}
    return out


def navigable_next_ids(docs: Iterable[TaskDoc]) -> set[int]:
    """Ids a response must fetch to show the nexts of its navigable tasks."""
    return {i for doc in docs for i in shown_next_ids(doc)}


def encode(payload: dict[str, Any], fmt: Format) -> bytes:
    """Encode a Task (`{"task": …}`), a tasks object (`{"tasks": […]}`) or an error (`{"error": …}`): JSON is
    the value alone, XML a document whose root element is the key."""
    ((root, body),) = payload.items()
    if fmt is Format.JSON:
        return orjson.dumps(body)
    return xml_document(root, body)


def parse_json(body: bytes) -> Any:
    """A JSON request body as Python values; empty or malformed: BadRequest naming why."""
    if not body.strip():
        raise BadRequest("the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
