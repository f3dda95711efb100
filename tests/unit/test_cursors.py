"""GraphQL page cursors: what a field gives reads back to the same position; anything else is a user error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from graphql import GraphQLError

from graphql_schema.cursors import job_cursor, read_job_cursor, read_task_cursor, task_cursor
from models import JobPosition


def test_a_job_cursor_reads_back_to_its_position_and_snapshot():
    position = JobPosition(datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC), "job-1")
    assert read_job_cursor(job_cursor(position, (1_700_000_000, 3))) == (position, (1_700_000_000, 3))
    never_updated = JobPosition(None, "job-2")
    assert read_job_cursor(job_cursor(never_updated, None)) == (never_updated, None)


def test_a_task_cursor_reads_back_to_its_id():
    assert read_task_cursor(task_cursor(9_007_199_254_740_993)) == 9_007_199_254_740_993


@pytest.mark.parametrize("cursor", ["", "not base64!", "bnVsbA", task_cursor(5)[:-2], "eyJpIjoiNSJ9"])
def test_a_cursor_no_field_gave_is_refused_naming_it(cursor):
    with pytest.raises(GraphQLError, match="is not a cursor this field gave"):
        read_task_cursor(cursor)


def test_a_task_cursor_is_not_a_job_cursor():
    with pytest.raises(GraphQLError, match="is not a cursor this field gave"):
        read_job_cursor(task_cursor(5))
