"""Accept and Content-Type: one RFC 9110 parser (web/negotiation.py) and each front end's choice on it."""

from __future__ import annotations

import pytest

from graphql_schema.http import GRAPHQL_RESPONSE_TYPE, response_media_type
from graphql_schema.http import NotAcceptable as GraphQLNotAcceptable
from rest.negotiation import (
    Format,
    NotAcceptable,
    UnsupportedMediaType,
    request_charset,
    request_format,
    response_format,
    response_format_or_json,
)
from web.negotiation import NOT_WANTED, media_ranges, preference


def test_media_ranges_read_q_lower_case_and_skip_empty_parts():
    ranges = media_ranges("Text/XML;q=0.5, ,application/json;q=abc, */*;q=7")
    assert [(r.name, r.quality, r.position) for r in ranges] == [
        ("text/xml", 0.5, 0),
        ("application/json", 0.0, 2),
        ("*/*", 1.0, 3),
    ]


def test_the_most_specific_range_decides_and_the_first_of_equals_wins():
    ranges = media_ranges("*/*;q=0.1, application/*;q=0.2, application/json;q=0.3, application/json;q=0.9")
    assert preference(ranges, "application/json") == (0.3, 2, 2)
    assert preference(ranges, "application/xml") == (0.2, 1, 1)
    assert preference(ranges, "text/xml") == (0.1, 0, 0)
    assert preference(media_ranges("text/html"), "application/json") == NOT_WANTED


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, Format.JSON),
        ("  ", Format.JSON),
        (",", Format.JSON),  # empty list elements only (RFC 9110 section 5.6.1): no media range named
        (" , ,", Format.JSON),
        ("*/*", Format.JSON),
        ("application/*", Format.JSON),
        ("application/xml", Format.XML),
        ("text/xml", Format.TEXT_XML),
        ("text/*", Format.TEXT_XML),
        ("application/json;q=0.5, application/xml", Format.XML),
        ("application/xml, application/json", Format.XML),
        ("application/json, application/xml", Format.JSON),
        ("application/xml;q=0.5, text/xml;q=0.8", Format.TEXT_XML),
    ],
)
def test_rest_answers_in_the_format_the_caller_prefers(accept, expected):
    assert response_format(accept) is expected


def test_rest_refuses_what_it_cannot_answer_in_but_errors_fall_back_to_json():
    with pytest.raises(NotAcceptable, match="text/html"):
        response_format("text/html, application/json;q=0")
    assert response_format_or_json("text/html") is Format.JSON


def test_rest_reads_json_or_xml_bodies_and_their_charset():
    assert request_format("application/json; charset=utf-8") is Format.JSON
    assert request_format("Text/XML") is Format.XML
    assert request_charset('application/xml; charset="ISO-8859-1"') == "ISO-8859-1"
    assert request_charset("application/xml") is None
    with pytest.raises(UnsupportedMediaType, match="without Content-Type"):
        request_format(None)
    with pytest.raises(UnsupportedMediaType, match="text/plain"):
        request_format("text/plain")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        (",", "application/json"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        (GRAPHQL_RESPONSE_TYPE, GRAPHQL_RESPONSE_TYPE),
        (f"application/json;q=0.9, {GRAPHQL_RESPONSE_TYPE}", GRAPHQL_RESPONSE_TYPE),
        (f"*/*, {GRAPHQL_RESPONSE_TYPE}", GRAPHQL_RESPONSE_TYPE),
        (f"application/json, {GRAPHQL_RESPONSE_TYPE}", "application/json"),
        (f"{GRAPHQL_RESPONSE_TYPE}, application/json", GRAPHQL_RESPONSE_TYPE),
    ],
)
def test_graphql_answers_in_the_media_type_the_caller_prefers(accept, expected):
    assert response_media_type(accept) == expected


def test_graphql_refuses_what_it_cannot_answer_in():
    with pytest.raises(GraphQLNotAcceptable):
        response_media_type("text/html")
