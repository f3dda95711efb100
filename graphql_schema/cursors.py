"""Opaque page cursors: base64url of a little JSON, so dashboards pass them back without reading them."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from graphql_schema.errors import user_error
from models import JobPosition


def _encode(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def _decode(cursor: str, argument: str) -> dict[str, Any]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if not isinstance(value, dict):
        raise user_error(f"{argument}: {cursor!r} is not a cursor this field gave")
    return value


def job_cursor(position: JobPosition, snapshot: tuple[int, int] | None) -> str:
    last_update = None if position.last_update is None else int(position.last_update.timestamp() * 1000)
    return _encode({"u": last_update, "j": position.job_id, "s": list(snapshot) if snapshot else None})


def read_job_cursor(cursor: str) -> tuple[JobPosition, tuple[int, int] | None]:
    value = _decode(cursor, "after")
    try:
        updated, job_id, snapshot = value["u"], value["j"], value["s"]
        last_update = None if updated is None else datetime.fromtimestamp(updated / 1000, tz=UTC)
        if not isinstance(job_id, str):
            raise TypeError(job_id)
        return JobPosition(last_update, job_id), _cluster_time(snapshot) if snapshot else None
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, OSError):
        raise user_error(f"after: {cursor!r} is not a cursor this field gave") from None


def _cluster_time(snapshot: Any) -> tuple[int, int]:
    """A snapshot as a listing gave it: a MongoDB timestamp's seconds and increment, each of 32 bits."""
    seconds, increment = snapshot
    if not all(type(part) is int and 0 <= part < 2**32 for part in (seconds, increment)):  # bool is no int here
        raise ValueError(snapshot)
    return seconds, increment


def task_cursor(task_id: int) -> str:
    return _encode({"i": task_id})


def read_task_cursor(cursor: str) -> int:
    task_id = _decode(cursor, "after").get("i")
    if type(task_id) is not int:
        raise user_error(f"after: {cursor!r} is not a cursor this field gave")
    return task_id
