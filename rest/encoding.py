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
from web import json_texts

_RANK = {name: rank for rank, name in enumerate(RESPONSE_FIELD_ORDER)}
"""Each Task field's place in an answer (RESPONSE_FIELD_ORDER: the legacy guide's order)."""


def task_to_api(doc: TaskDoc, linked: Mapping[int, TaskDoc] | None = None) -> dict[str, Any]:
    """A stored task as the API shows it, its fields in RESPONSE_FIELD_ORDER whatever order they are stored in
    (a create stores its defaults last, an update appends the fields it adds, a tool writes any order): one task
    is the same bytes over its life, and an XML caller whose schema fixes the elements' order reads every one.
    A navigable task carries its next tasks one level deep, last, taken from `linked` (their own nexts are not
    expanded)."""
    out: dict[str, Any] = {"id": doc["_id"]}
    # Walking the document rather than the thirty-odd field names matters on lists of thousands of tasks; most
    # are stored in order already, and only the others are sorted.
    in_order, last = True, 0
    for name, value in doc.items():
        rank = _RANK.get(name)
        if value is None or not rank:  # not a Task field (id's rank is 0: `_id` stands for it)
            continue
        in_order, last = in_order and rank > last, rank
        out[name] = format_datetime(value) if isinstance(value, datetime) else value
    if not in_order:
        out = dict(sorted(out.items(), key=lambda field: _RANK[field[0]]))
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
    """A JSON request body as Python values; empty or malformed: BadRequest naming why. Not yet bounded nor
    checked for names given twice (`refuse_repeated_members`, once the body's size is bounded)."""
    body = json_texts.without_byte_order_mark(body)
    if not body.strip():
        raise BadRequest("the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None


def refuse_repeated_members(body: bytes) -> None:
    """BadRequest naming a member a JSON body's object names twice (web.json_texts)."""
    try:
        json_texts.refuse_repeated_members(json_texts.without_byte_order_mark(body))
    except json_texts.RepeatedMember as error:
        raise BadRequest(f"ambiguous JSON: {error}") from None
