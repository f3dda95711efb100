"""models.conditions.evaluate against a plain model of RFC 9110 section 13.2.2, written from the RFC's text
rather than from the gateway's code: the comparison functions of section 8.8.3.2, If-Match (13.1.1),
If-None-Match (13.1.2) and the order of evaluation (13.2.2). Also the ETags of a task's representations."""

from __future__ import annotations

from dataclasses import dataclass

import bson
from hypothesis import given
from hypothesis import strategies as st

from models import (
    JSON_MEDIA_TYPE,
    REPRESENTATION_SUFFIXES,
    Outcome,
    Preconditions,
    etag_of,
    evaluate,
)
from models.conditions import digest_of, etags_of
from models.stored_task import TaskDoc
from models.task import NAVIGABLE_TYPES
from web.etags import parse_entity_tags

OPAQUE = st.sampled_from(['"a"', '"b"', '"c"', '"a-xml"', '""'])
TAG = st.tuples(st.booleans(), OPAQUE)  # (weak, opaque-tag)


@dataclass(frozen=True)
class Field:
    """An If-Match or If-None-Match field as the RFC's grammar has it: `*` or a list of entity tags."""

    star: bool
    tags: tuple[tuple[bool, str], ...]

    def header(self) -> str:
        return "*" if self.star else ", ".join(("W/" if weak else "") + opaque for weak, opaque in self.tags)


FIELD = st.one_of(
    st.just(Field(True, ())),
    st.lists(TAG, min_size=1, max_size=4).map(lambda tags: Field(False, tuple(tags))),
)


def strong_match(a: tuple[bool, str], b: tuple[bool, str]) -> bool:
    """RFC 9110 section 8.8.3.2: both not weak and their opaque-tags identical."""
    return not a[0] and not b[0] and a[1] == b[1]


def weak_match(a: tuple[bool, str], b: tuple[bool, str]) -> bool:
    """RFC 9110 section 8.8.3.2: opaque-tags identical, either or both may be weak."""
    return a[1] == b[1]


def rfc_status(if_match: Field | None, if_none_match: Field | None, current: list[str] | None, safe: bool) -> int:
    """RFC 9110 section 13.2.2, for a server without Last-Modified or ranges: the status the request gets (200
    meaning "perform the method"). `current`: the strong ETags of the selected representation(s), None when the
    target has no current representation."""
    current_tags = [(False, tag) for tag in current or ()]
    # Step 1: If-Match (13.1.1): `*` is true when a current representation exists; a list is true when one of
    # its tags matches a current one by the strong comparison. False: 412.
    if if_match is not None:
        holds = (
            current is not None
            if if_match.star
            else any(strong_match(given_tag, tag) for given_tag in if_match.tags for tag in current_tags)
        )
        if not holds:
            return 412
    # Step 3: If-None-Match (13.1.2): `*` is false when a current representation exists; a list is false when one
    # of its tags matches a current one by the weak comparison. False: 304 for GET and HEAD, else 412.
    if if_none_match is not None:
        holds = (
            current is None
            if if_none_match.star
            else not any(weak_match(given_tag, tag) for given_tag in if_none_match.tags for tag in current_tags)
        )
        if not holds:
            return 304 if safe else 412
    return 200  # step 6: perform the method


STATUS_OF_OUTCOME = {
    Outcome.PERFORM: 200,
    Outcome.NOT_MODIFIED: 304,
    Outcome.IF_MATCH_FAILED: 412,
    Outcome.IF_NONE_MATCH_FAILED: 412,
}


@given(
    if_match=st.none() | FIELD,
    if_none_match=st.none() | FIELD,
    current=st.none() | st.lists(OPAQUE, min_size=1, max_size=3),
    safe=st.booleans(),
)
def test_evaluate_follows_rfc_9110_section_13_2_2(if_match, if_none_match, current, safe) -> None:
    conditions = Preconditions(
        parse_entity_tags(if_match.header(), "If-Match") if if_match else None,
        parse_entity_tags(if_none_match.header(), "If-None-Match") if if_none_match else None,
    )
    outcome = evaluate(conditions, current, safe=safe)
    assert STATUS_OF_OUTCOME[outcome] == rfc_status(if_match, if_none_match, current, safe)
    if outcome.failed:  # the outcome names the field that failed first
        expected = "If-Match" if if_match is not None and rfc_status(if_match, None, current, safe) == 412 else None
        assert outcome.value == (expected or "If-None-Match")


def test_each_representation_has_its_own_strong_etag() -> None:
    doc: TaskDoc = {"_id": 1, "status": "READY"}
    tags = {media_type: etag_of(doc, media_type, {}) for media_type in REPRESENTATION_SUFFIXES}
    assert len(set(tags.values())) == len(REPRESENTATION_SUFFIXES)
    assert tags[JSON_MEDIA_TYPE] == f'"{digest_of(bson.encode(doc))}"'  # JSON keeps the ETag callers always had
    assert set(etags_of(doc, {})) == set(tags.values())
    for tag in tags.values():  # each is a valid strong entity tag
        assert parse_entity_tags(tag, "If-Match").tags == ((False, tag),)
    assert etag_of({**doc, "status": "DONE"}, JSON_MEDIA_TYPE, {}) != tags[JSON_MEDIA_TYPE]


def test_a_navigable_tasks_etag_covers_the_next_tasks_it_shows() -> None:
    """A navigable task's representation shows its next tasks in full: a change of one is a change of it."""
    child: TaskDoc = {"_id": 2, "status": "OLD"}
    other: TaskDoc = {"_id": 3, "status": "READY"}
    for kind in NAVIGABLE_TYPES:
        parent: TaskDoc = {"_id": 1, "type": kind, "nexts": [3, 2, 9]}
        shown = {2: child, 3: other, 9: None}  # 9: a next task that does not exist, shown by no representation
        tag = etag_of(parent, JSON_MEDIA_TYPE, shown)
        assert etag_of(parent, JSON_MEDIA_TYPE, {**shown, 2: {**child, "status": "NEW"}}) != tag
        assert etag_of(parent, JSON_MEDIA_TYPE, {2: child, 3: other}) == tag
    plain: TaskDoc = {"_id": 1, "type": "execution-task", "nexts": [2]}
    unchanged = etag_of(plain, JSON_MEDIA_TYPE, {2: child})
    assert etag_of(plain, JSON_MEDIA_TYPE, {2: {**child, "status": "NEW"}}) == unchanged, "shows ids only"


def test_every_served_format_has_a_representation_suffix() -> None:
    from rest.negotiation import Format

    assert {fmt.value for fmt in Format} == set(REPRESENTATION_SUFFIXES)
