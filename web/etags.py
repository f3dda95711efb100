"""The grammar of If-Match and If-None-Match (RFC 9110 sections 8.8.3 and 13.1), read alike by both front ends:
a parsed field satisfies `models.conditions.EntityTagCondition`, which the conditional write checks."""

from __future__ import annotations

import re
from dataclasses import dataclass

from models import InvalidOperation

# RFC 9110 section 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text
_ENTITY_TAG = re.compile(r'(W/)?("[\x21\x23-\x7e\x80-\xff]*")')
_OWS = " \t"


@dataclass(frozen=True)
class EntityTags:
    """The value of an If-Match or If-None-Match field: `*` (any current version) or a list of entity tags,
    each kept with whether it is weak (`W/`)."""

    any_version: bool
    tags: tuple[tuple[bool, str], ...] = ()

    def matches_strongly(self, current: str) -> bool:
        """If-Match (RFC 9110 section 13.1.1): strong comparison, so a weak tag never matches."""
        return self.any_version or any(not weak and tag == current for weak, tag in self.tags)

    def matches_weakly(self, current: str) -> bool:
        """If-None-Match (RFC 9110 section 13.1.2): weak comparison, the `W/` prefix ignored."""
        return self.any_version or any(tag == current for _, tag in self.tags)


def parse_entity_tags(value: str, name: str) -> EntityTags:
    """`*` or a comma-separated list of entity tags (RFC 9110 sections 13.1.1 and 5.6.1: empty list elements
    are allowed and ignored). Several field lines come joined with commas. InvalidOperation naming `name` for
    anything else, such as a tag without its double quotes."""
    stripped = value.strip(_OWS)
    if stripped == "*":
        return EntityTags(any_version=True)
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(value):
        while position < len(value) and value[position] in _OWS + ",":
            position += 1
        if position == len(value):
            break
        match = _ENTITY_TAG.match(value, position)
        if match is None:
            raise InvalidOperation(
                f'{name}: expected * or entity tags in double quotes, such as "3f2a…" or W/"3f2a…", at '
                f"{value[position : position + 40]!r}"
            )
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
        while position < len(value) and value[position] in _OWS:
            position += 1
        if position < len(value) and value[position] != ",":
            raise InvalidOperation(f"{name}: entity tags must be separated by commas, at {value[position:][:40]!r}")
    if not tags:
        raise InvalidOperation(f"{name}: expected * or at least one entity tag")
    return EntityTags(any_version=False, tags=tuple(tags))
