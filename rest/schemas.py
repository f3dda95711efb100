"""Pydantic shapes of the legacy schema, for the OpenAPI document only (bodies are encoded by rest.encoding)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from models.task import INT64_MAX, TaskFields

_ID: dict[str, JsonValue] = {"format": "int64", "minimum": 1, "maximum": INT64_MAX}


class TaskUpdate(TaskFields):
    """A task's fields to change: present ones replace, null clears, absent ones stay. Links are not among them
    (they change through the /next and /previous operations)."""

    model_config = ConfigDict(strict=False, json_schema_extra={"xml": {"name": "task"}})

    id: int | None = Field(default=None, json_schema_extra=_ID, description="if given, the path's id")
    creation_timestamp: datetime | None = Field(default=None, alias="creation-timestamp", description="ignored")
    update_timestamp: datetime | None = Field(default=None, alias="update-timestamp", description="ignored")


class Task(TaskUpdate):
    """A task; execution-task, execution-task-list and navigable variant fields included."""

    nexts: TaskList | None = Field(default=None, description="navigable variants: the direct next tasks")


class TaskList(BaseModel):
    """The legacy `tasks` object (XML element `tasks`). Its component is not named `Tasks`: generators name a
    model's variables after it (openapi-python-client's `tasks = cls(tasks=tasks)` does not type-check)."""

    model_config = ConfigDict(json_schema_extra={"xml": {"name": "tasks"}})

    tasks: list[Task] = Field(default_factory=list)


class Error(BaseModel):
    model_config = ConfigDict(json_schema_extra={"xml": {"name": "error"}})

    code: int
    message: str


def body_of(schema: str) -> dict[str, Any]:
    """An OpenAPI requestBody of the named component in JSON and XML."""
    ref = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    return {"requestBody": {"required": True, "content": {"application/json": ref, "application/xml": ref}}}


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match names the answer's current ETag (no body)"}
}


def answers(success: int, description: str, model: type[BaseModel] | None, *errors: int) -> dict[int | str, Any]:
    """The documented responses of one operation, in both media types."""
    error_text = {
        400: "Bad request, check input parameters. Are they well formed?",
        403: "Authentication error. Is token missing?",
        404: "Bad request",
        406: "Not acceptable: ask for application/json or application/xml",
        412: "Precondition failed: If-Match names no current ETag, or If-None-Match names one; nothing was changed",
        413: "Request body too large",
        415: "Unsupported media type: send application/json or application/xml",
        409: "Conflict: a create with this Idempotency-Key is still in progress",
        422: "Unprocessable: this Idempotency-Key was used for a create with other tasks",
        500: "Internal server error",
        503: "MongoDB unavailable: nothing was changed",
        504: "Outcome unknown: the change was sent for commit, and whether it was stored could not be learned",
    }
    both: dict[str, Any] = {"application/json": {}, "application/xml": {}}
    documented: dict[int | str, Any] = {
        success: {"description": description, **({"model": model, "content": both} if model else {})}
    }
    for code in (*errors, 403, 406, 500, 503):
        documented[code] = {"description": error_text[code], "model": Error, "content": both}
    return documented
