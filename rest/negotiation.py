"""Which format a /tracking request is read in (Content-Type) and answered in (Accept, RFC 9110 §12.5.1), and
the exceptions for a body the gateway cannot read."""

from __future__ import annotations

from enum import Enum

from web.negotiation import media_ranges, preference

JSON_TYPE = "application/json"
XML_TYPE = "application/xml"
TEXT_XML_TYPE = "text/xml"
XML_TYPES = frozenset({XML_TYPE, TEXT_XML_TYPE})


class Format(Enum):
    """A response's format, by its media type: XML is labelled text/xml for callers that prefer that."""

    JSON = JSON_TYPE
    XML = XML_TYPE
    TEXT_XML = TEXT_XML_TYPE


class BadRequest(Exception):
    """The request cannot be understood (400); the message names the offending field, parameter or element."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAcceptable(Exception):
    """No representation the caller accepts (406)."""


class UnsupportedMediaType(Exception):
    """The request body is neither JSON nor XML (415)."""


_OFFERED = ((Format.JSON, (JSON_TYPE,)), (Format.XML, (XML_TYPE, TEXT_XML_TYPE)))
"""What the gateway can answer in, JSON first: on a tie (`*/*`, `application/*`), JSON."""


def response_format(accept: str | None) -> Format:
    """JSON or XML by the caller's Accept (RFC 9110): the format with the higher q, then the one named
    earlier; no Accept (or one naming no media range), or a tie within one range (`*/*`), gives JSON. Neither
    acceptable: NotAcceptable (406).
    XML is labelled text/xml when the caller gives text/xml a higher q than application/xml (`text/xml`,
    `text/*`)."""
    ranges = media_ranges(accept or "")
    if not ranges:  # no Accept, an empty one, or one of empty list elements (`,`: RFC 9110 section 5.6.1)
        return Format.JSON
    best: tuple[float, int, Format] | None = None
    for fmt, media_types in _OFFERED:
        # A format is as wanted as the best of its media types; specificity does not count here, only q.
        quality, _, position = max(
            (preference(ranges, media) for media in media_types), key=lambda p: (p.quality, -p.position)
        )
        if quality > 0 and (best is None or (quality, -position) > (best[0], -best[1])):
            best = (quality, position, fmt)
    if best is None:
        raise NotAcceptable(f"cannot answer with {accept!r}: use Accept application/json or application/xml")
    if best[2] is Format.XML and preference(ranges, TEXT_XML_TYPE).quality > preference(ranges, XML_TYPE).quality:
        return Format.TEXT_XML
    return best[2]


def response_format_or_json(accept: str | None) -> Format:
    """For error bodies: the negotiated format, or JSON when the caller accepts neither."""
    try:
        return response_format(accept)
    except NotAcceptable:
        return Format.JSON


def request_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type, if any (Java stacks often declare it only there)."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def request_format(content_type: str | None) -> Format:
    """JSON or XML by the body's Content-Type (application/json, application/xml or text/xml, parameters
    ignored); anything else, or none: UnsupportedMediaType (415)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_TYPE:
        return Format.JSON
    if media in XML_TYPES:
        return Format.XML
    shown = f"Content-Type {content_type!r}" if content_type else "a body without Content-Type"
    raise UnsupportedMediaType(f"cannot read {shown}: send application/json or application/xml")
