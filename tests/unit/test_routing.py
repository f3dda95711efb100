"""Routing of /tracking without a server (rest/guard.py `routing_path`, `path_value`; rest/fast_read.py
`task_id_of`): which path a request is routed on, and which GETs the fast read answers itself."""

from __future__ import annotations

import pytest
from starlette.types import Scope

from models import INT64_MAX
from rest.fast_read import task_id_of
from rest.guard import path_value, routing_path


def _scope(path: str, raw_path: bytes | None) -> Scope:
    scope: Scope = {"type": "http", "path": path}
    if raw_path is not None:
        scope["raw_path"] = raw_path
    return scope


@pytest.mark.parametrize(
    ("path", "raw", "routed"),
    [
        ("/tracking/job/a/b/task", b"/tracking/job/a/b/task", None),  # nothing encoded: the decoded path
        ("/tracking/job/a/b/task", b"/tracking/job/a%2Fb/task", "/tracking/job/a%2Fb/task"),  # a slash in a job id
        ("/tracking/job/a b/task", b"/tracking/job/a%20b/task", "/tracking/job/a b/task"),
        ("/tracking/job/100%/task", b"/tracking/job/100%25/task", "/tracking/job/100%25/task"),
        ("/tracking/job/x%2Fy/task", None, "/tracking/job/x%252Fy/task"),  # no raw_path: '%' kept escaped
        ("/tracking/job/x/task", None, None),
    ],
)
def test_a_request_is_routed_on_the_path_the_client_sent(path: str, raw: bytes | None, routed: str | None) -> None:
    assert routing_path(_scope(path, raw)) == routed


def test_a_path_parameter_is_read_as_the_client_meant_it() -> None:
    assert path_value("a%2Fb") == "a/b"
    assert path_value("100%25") == "100%"


@pytest.mark.parametrize(
    ("path", "task_id"),
    [
        ("/tracking/task/7", 7),
        (f"/tracking/task/{INT64_MAX}", INT64_MAX),
        (f"/tracking/task/{INT64_MAX + 1}", None),  # past int64: the router answers (400)
        ("/tracking/task/0", None),
        ("/tracking/task/-1", None),
        ("/tracking/task/+1", None),
        ("/tracking/task/1e3", None),
        ("/tracking/task/\u0661", None),  # an Arabic-Indic digit: isdigit, not ASCII
        ("/tracking/task/7/next", None),
        ("/tracking/task/", None),
        ("/tracking/tasks/7", None),
    ],
)
def test_only_a_get_of_a_valid_task_id_is_answered_ahead_of_the_router(path: str, task_id: int | None) -> None:
    assert task_id_of(path) == task_id
