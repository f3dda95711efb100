"""The legacy NFV Director Tracking API under /tracking, in JSON and XML."""

from typing import Any

from fastapi import FastAPI

from rest.errors import error_response, install_error_handlers
from rest.routes import router


def install(app: FastAPI) -> None:
    """Mount the /tracking operations and the Error-body handlers on `app`."""
    install_error_handlers(app)
    app.include_router(router)
    _document_400_not_422(app)


def _document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents parameter errors as 422; this API answers them 400 with an Error body."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["error_response", "install"]
