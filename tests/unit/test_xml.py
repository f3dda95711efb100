"""XML request bodies (rest/xml.py): the guards of the parser and JAXB's conventions, without a server."""

from __future__ import annotations

import pytest

from models import InvalidOperation
from rest.negotiation import BadRequest
from rest.xml import XML_NIL, parse_xml, xml_document, xml_task_list
from web.limits import RequestLimits

LIMITS = RequestLimits()


def test_a_jaxb_body_reads_as_the_json_body_would():
    body = b"""<?xml version="1.0"?>
    <ns2:tasks xmlns:ns2="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <ns2:task xsi:type="ns2:subTask">
        <job-id>  j1  </job-id>
        <root> true </root>
        <number-of-retries>3</number-of-retries>
        <owner xsi:nil="true"/>
        <nexts><task><name/></task></nexts>
      </ns2:task>
    </ns2:tasks>"""
    tasks = xml_task_list(parse_xml(body, "tasks", LIMITS), "tasks")
    assert tasks == [
        {"job-id": "  j1  ", "root": True, "number-of-retries": 3, "owner": None, "nexts": {"tasks": [{"name": ""}]}}
    ]


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), (" 1 ", True), ("0", False)])
def test_a_boolean_is_read_in_xs_booleans_lexical_space(text: str, value: bool) -> None:
    """xs:boolean is `true`, `false`, `1` or `0`: a schema-bound XML stack may write either; `1` was refused."""
    body = f"<tasks><task><root>{text}</root></task></tasks>".encode()
    assert xml_task_list(parse_xml(body, "tasks", LIMITS), "tasks") == [{"root": value}]


def test_nil_is_not_empty():
    parsed = parse_xml(b'<task xmlns:xsi="x"><a xsi:nil="true"/><b/></task>', "task", LIMITS)
    assert parsed == {"a": XML_NIL, "b": None}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'<!DOCTYPE t [<!ENTITY x "y">]><tasks/>', "refused XML: a DOCTYPE"),
        (b"<tasks>", "malformed XML"),
        (b"<task/>", "expected a <tasks> root element, found <task>"),
    ],
)
def test_bodies_that_cannot_be_read_are_refused_naming_why(body, message):
    with pytest.raises(BadRequest, match=message):
        parse_xml(body, "tasks", LIMITS)


def test_an_unknown_charset_is_named():
    with pytest.raises(BadRequest, match="unknown charset 'nope'"):
        parse_xml(b"<tasks/>", "tasks", LIMITS, charset="nope")


def test_nesting_elements_and_attributes_are_bounded_as_expat_reports_them():
    small = RequestLimits(max_tasks_per_create=1, max_nesting=1, max_xml_attributes=2)
    with pytest.raises(InvalidOperation, match="nested deeper than 12 levels"):
        parse_xml(b"<tasks>" + b"<a>" * 12 + b"</a>" * 12 + b"</tasks>", "tasks", small)
    with pytest.raises(InvalidOperation, match="more than 128 elements"):
        parse_xml(b"<tasks>" + b"<a/>" * 128 + b"</tasks>", "tasks", small)
    with pytest.raises(InvalidOperation, match="<a> has 3 attributes"):
        parse_xml(b'<tasks><a x="1" y="2" z="3"/></tasks>', "tasks", small)
    with pytest.raises(InvalidOperation, match="a tag, comment or processing instruction over 12288 bytes"):
        parse_xml(b"<tasks><!--" + b"x" * 70_000 + b"--></tasks>", "tasks", small)


def test_answers_keep_carriage_returns_and_replace_what_xml_cannot_carry():
    document = xml_document("task", {"id": 1, "name": "a\rb\x00"})
    assert (
        document == b'<?xml version="1.0" encoding="utf-8"?>\n<task><id>1</id><name>a&#13;b\xef\xbf\xbd</name></task>'
    )
