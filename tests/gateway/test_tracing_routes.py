"""Each server span names the route that served it (`http.route`, and the span's name), for every kind of route
the app has: the API's, the app's own (/metrics, /openapi.json) and its mounted static assets; a request no route
matched names none (its path is no template)."""

from __future__ import annotations

import pytest

from tests.gateway.tracing_setup import new_trace, traceparent


@pytest.mark.parametrize(
    ("path", "status", "route"),
    [
        ("/tracking/task/1234567", 404, "/tracking/task/{taskId}"),
        ("/metrics", 200, "/metrics"),
        ("/openapi.json", 200, "/openapi.json"),
        ("/static/token.js", 200, "/static/{path}"),
        ("/no/such/route", 404, None),
    ],
)
async def test_every_kind_of_route_is_named_on_its_server_span(traced, path, status, route):
    http, receiver = traced
    trace_id, caller = new_trace()
    assert (await http.get(path, headers=traceparent(trace_id, caller))).status_code == status
    name = f"GET {route}" if route is not None else "GET"
    (server,) = [span for span in await receiver.trace_of(trace_id, name) if span.kind == "server"]
    assert server.attributes.get("http.route") == route
    assert server.attributes["url.path"] == path and server.attributes["http.response.status_code"] == status


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "route"),
    [
        ("GET", "/tracking/task/1", {"X-Auth-Token": "not-a-token"}, 403, "/tracking/task/{taskId}"),
        ("GET", "/tracking/task/1", {"Accept": "text/csv"}, 406, "/tracking/task/{taskId}"),
        ("POST", "/tracking/task", {"Content-Type": "application/json"}, 413, "/tracking/task"),
    ],
    ids=["a refused token", "an unacceptable Accept", "a body too large"],
)
async def test_a_request_refused_before_routing_still_names_its_route(traced, method, path, headers, status, route):
    """Refused by the middleware ahead of the router (the token, Accept, the body's size): the request was for a
    route all the same, and its span says which."""
    http, receiver = traced
    trace_id, caller = new_trace()
    body = b" " * (17 * 1024 * 1024) if status == 413 else None  # over the default TRACKING_MAX_BODY_BYTES
    answer = await http.request(method, path, headers={**traceparent(trace_id, caller), **headers}, content=body)
    assert answer.status_code == status, answer.text
    (server,) = [span for span in await receiver.trace_of(trace_id, f"{method} {route}") if span.kind == "server"]
    assert server.attributes.get("http.route") == route
