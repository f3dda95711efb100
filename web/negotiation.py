"""Reading an Accept header (RFC 9110 §12.5.1), shared by both front ends: each offers its own media types
and breaks ties its own way, but an Accept header is parsed and a media type matched against it only here."""

from __future__ import annotations

from typing import NamedTuple


class MediaRange(NamedTuple):
    """One part of an Accept header: `name` lower-cased (`text/xml`, `text/*`, `*/*`), `quality` in 0..1,
    `position` counted from 0 in the header."""

    name: str
    quality: float
    position: int


class Preference(NamedTuple):
    """How much a caller wants one media type: the q of the most specific range that matches it, that range's
    `specificity` (2 for the type itself, 1 for `type/*`, 0 for `*/*`, -1 when nothing matches, with q 0) and
    its `position` in the header."""

    quality: float
    specificity: int
    position: int


NOT_WANTED = Preference(0.0, -1, 0)


def media_ranges(accept: str) -> list[MediaRange]:
    """The media ranges of an Accept header, in order; a q that is no number counts as 0, one outside 0..1 is
    clamped into it, and empty parts are skipped."""
    ranges = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append(MediaRange(media.lower(), quality, position))
    return ranges


def preference(ranges: list[MediaRange], media: str) -> Preference:
    """RFC 9110 §12.5.1: the most specific range matching `media` decides its q (`type/subtype`, then
    `type/*`, then `*/*`; the first one named among equally specific ranges); NOT_WANTED when none matches."""
    kind = media.split("/", 1)[0]
    for specificity, candidate in ((2, media), (1, f"{kind}/*"), (0, "*/*")):
        for name, quality, position in ranges:
            if name == candidate:
                return Preference(quality, specificity, position)
    return NOT_WANTED
