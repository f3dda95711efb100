"""The legacy NFV Director Tracking API under /tracking, in JSON and XML."""

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from models import INT64_MAX
from rest.errors import error_response, install_error_handlers
from rest.fast_read import FastTaskRead
from rest.guard import TrackingGuard
from rest.routes import router
from rest.schemas import TaskUpdate


def install(app: FastAPI) -> None:
    """Mount the /tracking operations, their token and Accept guard, and the Error-body handlers on `app` (whose
    OpenAPI document `documented_openapi` completes)."""
    install_error_handlers(app, [route for route in router.routes if isinstance(route, APIRoute)])
    app.include_router(router)


SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-Auth-Token",
    "description": "An API token (TRACKING_API_TOKENS), or a read-only one (TRACKING_READ_TOKENS) for GETs",
}
ID_SCHEMA = {"type": "integer", "format": "int64", "minimum": 1, "maximum": INT64_MAX}
ID_LISTS = {"nextTaskId": "Next task ids (nextTaskId=1&nextTaskId=2)", "prevTaskId": "Previous task ids"}


def documented_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's OpenAPI document with what FastAPI cannot see, for client generators: the token as a security
    scheme on every operation (it is checked by TrackingGuard), ids as int64 with their bounds,
    nextTaskId/prevTaskId as required id arrays (read as strings to name a bad one in the error), parameter
    errors answered 400 with an Error body rather than FastAPI's 422, and only /tracking documented (/graphql
    has its own schema). The app's `openapi` calls it (gateway.app.GatewayApp)."""
    schema["paths"] = {path: ops for path, ops in schema["paths"].items() if path.startswith("/tracking/")}
    for operations in schema["paths"].values():
        for operation in operations.values():
            _document_operation(operation)
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {"apiKey": SECURITY_SCHEME}
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["TaskUpdate"] = TaskUpdate.model_json_schema(ref_template="#/components/schemas/{model}")
    return schema


def _document_operation(operation: dict[str, Any]) -> None:
    operation.get("responses", {}).pop("422", None)
    operation["security"] = [{"apiKey": []}]
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "taskId":
            parameter["schema"] = {**ID_SCHEMA, "description": "Task id"}
        elif parameter["name"] in ID_LISTS:
            parameter["required"] = True
            parameter["schema"] = {"type": "array", "items": ID_SCHEMA, "minItems": 1}
            parameter["description"] = ID_LISTS[parameter["name"]]


__all__ = ["FastTaskRead", "TrackingGuard", "documented_openapi", "error_response", "install"]
