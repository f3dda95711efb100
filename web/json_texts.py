"""JSON request texts as both front ends read them: a leading byte order mark skipped, and objects whose member
names are unique.

RFC 8259 section 8.1 lets a parser ignore a byte order mark before a JSON text: Java's Jackson (behind the
legacy API) does, some .NET and Windows tools write one, and the XML reader skips it too. RFC 8259 section 4 says
the names within an object SHOULD be unique and leaves a text with a name twice to each parser: orjson, like
most, keeps the last value, other parsers the first or both. A proxy, a firewall or an audit log in front of the
gateway may read the other one, so a body with a name twice is refused, naming it, as the XML reader refuses a
field given twice."""

from __future__ import annotations

import json
from typing import Any, overload

_BYTE_ORDER_MARK = "\ufeff"


@overload
def without_byte_order_mark(text: bytes) -> bytes: ...
@overload
def without_byte_order_mark(text: str) -> str: ...
def without_byte_order_mark(text: bytes | str) -> bytes | str:
    """`text` without the byte order mark it may begin with (UTF-8's bytes, or the character)."""
    if isinstance(text, bytes):
        return text.removeprefix(_BYTE_ORDER_MARK.encode())
    return text.removeprefix(_BYTE_ORDER_MARK)


class RepeatedMember(ValueError):
    """A JSON object names a member twice: `name`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the member {name!r} appears more than once in one object")
        self.name = name


def refuse_repeated_members(text: bytes | str) -> None:
    """RepeatedMember for the first object of `text` (a JSON text orjson has read) holding a name twice. Read
    again by the standard library's parser, the one here that hands an object's members over as a list; any
    other complaint of its (nesting deeper than its recursion limit) is left to the checks that follow."""
    try:
        json.loads(text, object_pairs_hook=_unique_members)
    except RepeatedMember:
        raise
    except (ValueError, RecursionError):
        return


def _unique_members(members: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(members)
    if len(found) != len(members):
        seen: set[str] = set()
        for name, _ in members:
            if name in seen:
                raise RepeatedMember(name)
            seen.add(name)
    return found
