"""The legacy NFV Director Tracking API under /tracking, in JSON and XML."""

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from rest.errors import error_response, install_error_handlers
from rest.guard import TrackingGuard
from rest.routes import router


def install(app: FastAPI) -> None:
    """Mount the /tracking operations, their token and Accept guard, and the Error-body handlers on `app`."""
    install_error_handlers(app, [route for route in router.routes if isinstance(route, APIRoute)])
    app.include_router(router)
    _document_openapi(app)


TOKEN_PARAMETER = {
    "name": "X-Auth-Token",
    "in": "header",
    "required": True,
    "description": "Authentication token",
    "schema": {"type": "string"},
}


def _document_openapi(app: FastAPI) -> None:
    """What FastAPI cannot see: the token header (checked by TrackingGuard) on every operation, and parameter
    errors answered 400 with an Error body rather than FastAPI's 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
                    if path.startswith("/tracking/"):
                        operation.setdefault("parameters", []).append(TOKEN_PARAMETER)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["TrackingGuard", "error_response", "install"]
