"""What every GraphQL type shares: the DateTime scalar, the GraphQL type of each field of
`models.task.CLIENT_FIELDS` (which the Task type and the inputs declare, so the REST and GraphQL shapes cannot
drift apart), and the default resolver that serves a Task straight from its stored document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from models import format_datetime, parse_datetime
from models.task import CLIENT_FIELDS, DATE_FIELDS, INT_FIELDS


def _serialize_datetime(value: Any) -> str:
    return format_datetime(value) if isinstance(value, datetime) else str(value)


def _parse_datetime(value: Any) -> datetime:
    try:
        return parse_datetime(value)
    except ValueError as error:
        raise ValueError(f"DateTime: {error}") from None


DATETIME_SCALAR = strawberry.scalar(
    name="DateTime",
    description="ISO 8601 in UTC with milliseconds (2026-11-22T18:00:00.000Z); in: any offset or epoch ms",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)
"""Maps Python datetimes to the contract's date format (Schema config scalar_map)."""


def _graphql_type(api_name: str) -> Any:
    if api_name in INT_FIELDS:
        return int | None
    if api_name == "root":
        return bool | None
    if api_name in DATE_FIELDS:
        return datetime | None
    return str | None


CLIENT_FIELD_TYPES = {python: _graphql_type(api) for python, api in CLIENT_FIELDS.items()}
"""The Python type of every field a client may set, by Python name (job_id, start_time, ...): what the Task type
and the inputs declare (`tests/unit/test_graphql_fields.py` checks them against it)."""

STORED_NAMES = {"creation_timestamp": "creation-timestamp", "update_timestamp": "update-timestamp", **CLIENT_FIELDS}


def read_field(source: Any, name: str) -> Any:
    """Strawberry's default resolver. A Task is served straight from its stored document (a dict): building a
    wrapper object with thirty-odd attributes per task cost more than the rest of a 10k-task query."""
    if type(source) is dict:
        return str(source["_id"]) if name == "id" else source.get(STORED_NAMES[name])
    return getattr(source, name)
