"""The If-Match / If-None-Match grammar (web/etags.py, RFC 9110 sections 8.8.3 and 13.1): what it reads, how it
compares, and that anything else is refused naming the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import InvalidOperation
from web.etags import EntityTags, parse_entity_tags

# etagc = %x21 / %x23-7E / obs-text (%x80-FF: a header value decoded as Latin-1)
ETAGC = st.characters(codec="latin-1", min_codepoint=0x21, exclude_characters='"\x7f')
TAGS = st.lists(st.tuples(st.booleans(), st.text(ETAGC, max_size=12).map(lambda t: f'"{t}"')), min_size=1, max_size=5)
SEPARATORS = st.sampled_from([",", ", ", " ,", " , ", ",,", "\t,"])


@given(TAGS, SEPARATORS)
def test_a_list_of_entity_tags_reads_back_as_written(tags, separator):
    field = separator.join(("W/" if weak else "") + tag for weak, tag in tags)
    assert parse_entity_tags(field, "If-Match") == EntityTags(any_version=False, tags=tuple(tags))


@given(TAGS)
def test_strong_comparison_ignores_weak_tags_and_weak_comparison_does_not(tags):
    parsed = parse_entity_tags(", ".join(("W/" if weak else "") + tag for weak, tag in tags), "If-Match")
    for _, tag in tags:
        assert parsed.matches_weakly(tag)
        assert parsed.matches_strongly(tag) == any(not w and t == tag for w, t in tags)
    assert not parsed.matches_weakly('"not one of them, it has spaces"')


@pytest.mark.parametrize("field", ["*", " * ", "\t*"])
def test_a_star_matches_any_version(field):
    parsed = parse_entity_tags(field, "If-None-Match")
    assert parsed.any_version
    assert parsed.matches_strongly('"x"')
    assert parsed.matches_weakly('"y"')


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ("3f2a", "expected * or entity tags in double quotes"),  # no quotes
        ('"a" "b"', "entity tags must be separated by commas"),
        ('"a", *', "expected * or entity tags in double quotes"),  # a star is alone or nothing
        ('w/"a"', "expected * or entity tags in double quotes"),  # the weak mark is case-sensitive
        ('"a b"', "expected * or entity tags in double quotes"),  # a space is no etagc
        ('"a"b', "entity tags must be separated by commas"),
        ("", "expected * or at least one entity tag"),
        (" , ,", "expected * or at least one entity tag"),
    ],
)
def test_anything_else_is_refused_naming_the_field(field, fragment):
    with pytest.raises(InvalidOperation) as refused:
        parse_entity_tags(field, "ifMatch")
    assert str(refused.value).startswith("ifMatch: ")
    assert fragment in str(refused.value)
