"""Query parameters given once: a parameter a route takes one value of (`root`, `type`) is refused when repeated,
naming it. FastAPI keeps the last value and drops the others; a proxy or an audit log in front may have read the
first, and a caller that repeats one has made a mistake it should hear of. Parameters a route takes as lists
(`status`, `nextTaskId`, `previousTaskId`) repeat as the legacy API documents."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.routing import APIRoute

from rest.negotiation import BadRequest

_LISTS = (list, tuple, set, frozenset)


def refuse_repeated_parameters(request: Request) -> None:
    """A router dependency: BadRequest naming the first single-valued query parameter given more than once."""
    if not request.url.query:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    for field in route.dependant.query_params:
        count = len(request.query_params.getlist(field.alias))
        if count > 1 and not _takes_a_list(field.field_info.annotation):
            raise BadRequest(f"{field.alias}: given {count} times; this parameter takes one value")


def _takes_a_list(annotation: Any) -> bool:
    """Whether a parameter's type is a list (or an optional one)."""
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return any(option in _LISTS or get_origin(option) in _LISTS for option in options)
