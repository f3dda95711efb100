"""The jobs listing's aggregation (models/jobs/listing.py), as built for each filter and page position."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson.code import Code

from models import JobFilter, JobPosition
from models.jobs.listing import JobListing, JobsPage, jobs_page, jobs_pipeline
from models.scopes import prefix_range


def test_a_prefix_is_an_index_range():
    assert prefix_range("fleet-") == {"$gte": "fleet-", "$lt": "fleet."}


def test_a_prefix_range_holds_no_code_point_past_the_last_nor_a_surrogate():
    """`jobs(filter: {idPrefix: "\\uDBFF\\uDFFF"})` (U+10FFFF) or ending in U+D7FF, from any caller, answered
    INTERNAL_SERVER_ERROR: the upper bound was chr(0x110000) (ValueError) or the surrogate U+D800 (MongoDB is sent
    UTF-8, which has none)."""
    assert prefix_range("a\U0010ffff") == {"$gte": "a\U0010ffff", "$lt": "b"}
    assert prefix_range("\U0010ffff\U0010ffff") == {"$gte": "\U0010ffff\U0010ffff"}
    assert prefix_range("job-\ud7ff") == {"$gte": "job-\ud7ff", "$lt": "job-\ue000"}


def test_an_unfiltered_first_page_groups_string_job_ids_on_the_index_and_reads_one_more_than_the_page():
    """Strings only (a range the index answers: JavaScript holding a job's name is no job), then the group."""
    pipeline = jobs_pipeline(20, None, JobFilter(), None)
    assert pipeline[0] == {"$match": {"job-id": {"$gte": ""}}}
    assert pipeline[1] == {"$sort": {"job-id": 1, "update-timestamp": -1}}
    assert pipeline[2] == {"$group": {"_id": "$job-id", "lastUpdate": {"$first": "$update-timestamp"}}}
    assert pipeline[-2:] == [{"$sort": {"lastUpdate": -1, "_id": 1}}, {"$limit": 21}]


def test_filters_match_before_the_group_and_dates_after_it():
    after, before = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    job_filter = JobFilter(id_prefix="j", updated_after=after, updated_before=before)
    pipeline = jobs_pipeline(5, None, job_filter, ["j1", "j2"])
    assert pipeline[0] == {"$match": {"job-id": {"$gte": "j", "$lt": "k", "$in": ["j1", "j2"]}}}
    assert {"$match": {"lastUpdate": {"$gt": after, "$lt": before}}} in pipeline
    assert pipeline.index({"$match": {"lastUpdate": {"$gt": after, "$lt": before}}}) > 2


def test_a_later_page_starts_after_the_last_job_of_the_one_before():
    last = datetime(2026, 1, 1, tzinfo=UTC)
    pipeline = jobs_pipeline(5, JobPosition(last, "j9"), JobFilter(), None)
    assert {
        "$match": {
            "$or": [
                {"lastUpdate": {"$lt": last}},
                {"lastUpdate": last, "_id": {"$gt": "j9"}},
                {"lastUpdate": None},
            ]
        }
    } in pipeline
    never_updated = jobs_pipeline(5, JobPosition(None, "j9"), JobFilter(), None)
    assert {"$match": {"lastUpdate": None, "_id": {"$gt": "j9"}}} in never_updated


def test_only_string_job_ids_are_listed():
    # The group of tasks without a job-id has id null; a tool may store a job-id of another BSON type, Code
    # (a str subclass) included: neither is a job, as the tolerant reader leaves such a job-id out.
    rows: list[dict[str, Any]] = [
        {"_id": None, "lastUpdate": None},
        {"_id": Code("f()"), "lastUpdate": None},
        {"_id": "j", "lastUpdate": 5},
    ]
    assert jobs_page(rows, 20, None) == JobsPage([JobListing("j", None)], False, None)
