"""JSON and XML on the wire: content negotiation, request body decoding, response encoding (CONTRACT §1)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, NoReturn
from xml.parsers import expat

import orjson
import xmltodict

from models import (
    BOOL_FIELDS,
    DATE_FIELDS,
    INT_FIELDS,
    NAVIGABLE_TYPES,
    RESPONSE_FIELD_ORDER,
    InvalidOperation,
    Limits,
    TaskDoc,
    format_datetime,
    xml_safe,
)

_API_FIELDS = frozenset(RESPONSE_FIELD_ORDER) - {"id"}
JSON_TYPE = "application/json"
XML_TYPE = "application/xml"
TEXT_XML_TYPE = "text/xml"
XML_TYPES = frozenset({XML_TYPE, TEXT_XML_TYPE})
_INTEGER = re.compile(r"^[+-]?[0-9]+$")


class Format(Enum):
    """A response's format, by its media type: XML is labelled text/xml for callers that prefer that."""

    JSON = JSON_TYPE
    XML = XML_TYPE
    TEXT_XML = TEXT_XML_TYPE


class BadRequest(Exception):
    """The request cannot be understood; the message names the offending field, parameter or element."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAcceptable(Exception):
    """No representation the caller accepts (406)."""


class UnsupportedMediaType(Exception):
    """The request body is neither JSON nor XML (415)."""


# ---- negotiation ------------------------------------------------------------------------------------------------


_OFFERED = ((Format.JSON, (JSON_TYPE,)), (Format.XML, (XML_TYPE, TEXT_XML_TYPE)))
"""What the gateway can answer in, JSON first: on a tie (`*/*`, `application/*`), JSON."""


def _media_ranges(accept: str) -> list[tuple[str, float, int]]:
    """(media range, q, position) of each part of an Accept header; a q that is no number counts as 0."""
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
            ranges.append((media.lower(), quality, position))
    return ranges


def _preference(ranges: list[tuple[str, float, int]], media: str) -> tuple[float, int]:
    """RFC 9110 §12.5.1: the q of the most specific range matching `media` (type/subtype, then type/*, then
    */*), and that range's position; (0, 0) when none matches."""
    kind = media.split("/", 1)[0]
    for candidate in (media, f"{kind}/*", "*/*"):
        matching = [(quality, position) for name, quality, position in ranges if name == candidate]
        if matching:
            return matching[0]
    return 0.0, 0


def response_format(accept: str | None) -> Format:
    """JSON or XML by the caller's Accept (RFC 9110): the format with the higher q, then the one named
    earlier; no Accept, or a tie within one range (`*/*`), gives JSON. Neither acceptable: 406. XML is
    labelled text/xml when the caller gives text/xml a higher q than application/xml (`text/xml`, `text/*`)."""
    if not accept or not accept.strip():
        return Format.JSON
    ranges = _media_ranges(accept)
    best: tuple[float, int, Format] | None = None
    for fmt, media_types in _OFFERED:
        quality, position = max((_preference(ranges, media) for media in media_types), key=lambda p: (p[0], -p[1]))
        if quality > 0 and (best is None or (quality, -position) > (best[0], -best[1])):
            best = (quality, position, fmt)
    if best is None:
        raise NotAcceptable(f"cannot answer with {accept!r}: use Accept application/json or application/xml")
    if best[2] is Format.XML and _preference(ranges, TEXT_XML_TYPE)[0] > _preference(ranges, XML_TYPE)[0]:
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
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_TYPE:
        return Format.JSON
    if media in XML_TYPES:
        return Format.XML
    shown = f"Content-Type {content_type!r}" if content_type else "a body without Content-Type"
    raise UnsupportedMediaType(f"cannot read {shown}: send application/json or application/xml")


# ---- responses --------------------------------------------------------------------------------------------------


def task_to_api(doc: TaskDoc, linked: Mapping[int, TaskDoc] | None = None) -> dict[str, Any]:
    """A stored task as the API shows it. A navigable task carries its next tasks one level deep, taken from
    `linked` (their own nexts are not expanded)."""
    out: dict[str, Any] = {"id": doc["_id"]}
    # In stored order (the API's order for tasks the gateway wrote); walking the document rather than the
    # thirty-odd field names matters on lists of thousands of tasks.
    for name, value in doc.items():
        if value is None or name not in _API_FIELDS:
            continue
        out[name] = format_datetime(value) if isinstance(value, datetime) else value
    if linked is not None and doc.get("type") in NAVIGABLE_TYPES:
        nexts = sorted(i for i in doc.get("nexts") or () if i in linked)
        out["nexts"] = {"tasks": [task_to_api(linked[i]) for i in nexts]}
    return out


def navigable_next_ids(docs: Iterable[TaskDoc]) -> set[int]:
    """Ids a response must fetch to show the nexts of its navigable tasks."""
    return {i for doc in docs if doc.get("type") in NAVIGABLE_TYPES for i in doc.get("nexts") or ()}


def _xml_value(value: Any) -> Any:
    """Strings other tools stored may hold characters XML 1.0 cannot carry: they go out as U+FFFD, so every
    XML answer parses (the gateway itself refuses such strings on input)."""
    return xml_safe(value) if type(value) is str else value


def _xml_task(task: dict[str, Any]) -> dict[str, Any]:
    out = {name: _xml_value(value) for name, value in task.items()}
    if "nexts" in task:
        out["nexts"] = {"task": [_xml_task(t) for t in task["nexts"]["tasks"]]}
    return out


def encode(payload: dict[str, Any], fmt: Format) -> bytes:
    """Encode a Task (`{"task": …}`), a tasks object (`{"tasks": […]}`) or an error (`{"error": …}`)."""
    if fmt is Format.JSON:
        ((_, body),) = payload.items()
        return orjson.dumps(body)
    ((root, body),) = payload.items()
    body = {"task": [_xml_task(task) for task in body["tasks"]]} if root == "tasks" else _xml_task(body)
    text: str = xmltodict.unparse({root: body}, encoding="utf-8")
    if "\r" in text:
        # XML 1.0 §2.11: a parser reads a literal CR (alone or before LF) as LF. Written as a character
        # reference, a CR survives any conforming parser, so a task read as XML and put back is unchanged.
        text = text.replace("\r", "&#13;")
    return text.encode()


# ---- requests ---------------------------------------------------------------------------------------------------


_ELEMENTS_PER_TASK = 64
"""A task has about forty fields: an XML create may hold this many elements per task it may create."""

_MARKUP_BYTES_PER_ATTRIBUTE = 4096
"""A tag may be this long per attribute TRACKING_XML_MAX_ATTRIBUTES allows (plus one for its name)."""

_FEED_BYTES = 64 * 1024
"""expat is fed this much at a time, so a tag growing past its bound is refused before expat has read it."""


class _XmlBounds:
    """What an XML body may hold, counted as expat reports it: depth, elements, attributes per element, and the
    length of one piece of markup. It refers to nothing of the parser's, so the parser, its handlers and what
    they built form no reference cycle and are freed with the request, not at the next full collection."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.depth = 0
        self.elements = 0
        self.max_elements = (limits.max_tasks_per_create + 1) * _ELEMENTS_PER_TASK
        self.max_markup_bytes = (limits.max_xml_attributes + 1) * _MARKUP_BYTES_PER_ATTRIBUTE

    def enter(self, name: str, attributes: list[str] | dict[str, str]) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > self.limits.max_document_depth:
            raise self.limits.depth_error("XML body")
        if self.elements > self.max_elements:
            raise InvalidOperation(
                f"XML body: more than {self.max_elements} elements ({_ELEMENTS_PER_TASK} per task a create "
                "may hold, TRACKING_MAX_TASKS_PER_CREATE)"
            )
        # With ordered_attributes (as xmltodict sets it), attributes come as [name, value, name, value, ...].
        count = len(attributes) // 2 if isinstance(attributes, list) else len(attributes)
        if count > self.limits.max_xml_attributes:
            raise self.attributes_error(f"<{name}> has {count} attributes")

    def leave(self) -> None:
        self.depth -= 1

    def refuse_long_markup(self, pending_bytes: int) -> None:
        """`pending_bytes`: what expat holds of a tag, comment or processing instruction it has not finished."""
        if pending_bytes > self.max_markup_bytes:
            raise self.attributes_error(f"a tag, comment or processing instruction over {self.max_markup_bytes} bytes")

    def attributes_error(self, found: str) -> InvalidOperation:
        allowed = self.limits.max_xml_attributes
        return InvalidOperation(
            f"XML body: {found}; an element may have at most {allowed} attributes (TRACKING_XML_MAX_ATTRIBUTES) "
            f"and a tag at most {_MARKUP_BYTES_PER_ATTRIBUTE} bytes per attribute allowed"
        )


def _counting_start(handler: Any, bounds: _XmlBounds) -> Any:
    def start(name: str, attributes: Any) -> None:
        bounds.enter(name, attributes)
        handler(name, attributes)

    return start


def _counting_end(handler: Any, bounds: _XmlBounds) -> Any:
    def end(name: str) -> None:
        bounds.leave()
        handler(name)

    return end


class _GuardedParser:
    """An expat parser whose element handlers count what `_XmlBounds` bounds, so an XML body is refused as soon
    as it nests deeper, holds more elements, or an element more attributes than a create may: xmltodict's
    work per element grows with depth, 200,000 nested elements would otherwise take minutes, and a million
    attributes in one tag over a second of expat alone (it reports a tag only once it has read all of it)."""

    def __init__(self, parser: Any, bounds: _XmlBounds) -> None:
        self.__dict__.update(_parser=parser, _bounds=bounds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def __setattr__(self, name: str, handler: Any) -> None:
        if name == "StartElementHandler":
            handler = _counting_start(handler, self._bounds)
        elif name == "EndElementHandler":
            handler = _counting_end(handler, self._bounds)
        setattr(self._parser, name, handler)

    def Parse(self, data: bytes, isfinal: bool = False) -> int:
        """Feed expat a slice at a time; after each, what it holds unfinished (from CurrentByteIndex, the start
        of the markup it is in) is bounded."""
        parser = self._parser
        view = memoryview(data)
        for offset in range(0, len(view), _FEED_BYTES):
            piece = view[offset : offset + _FEED_BYTES]
            parser.Parse(piece, False)
            self._bounds.refuse_long_markup(offset + len(piece) - max(parser.CurrentByteIndex, 0))
        result: int = parser.Parse(b"", isfinal)
        return result


class _GuardedExpat:
    """expat for xmltodict, refusing a DOCTYPE (hence entity declarations and external references) as soon as
    it starts, before anything in it is read, let alone expanded; and bounding what `_XmlBounds` bounds."""

    ExpatError = expat.ExpatError

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def ParserCreate(self, *args: Any, **kwargs: Any) -> Any:
        parser = expat.ParserCreate(*args, **kwargs)
        parser.StartDoctypeDeclHandler = _refuse_doctype
        parser.EntityDeclHandler = _refuse_doctype
        parser.ExternalEntityRefHandler = _refuse_doctype
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        return _GuardedParser(parser, _XmlBounds(self._limits))


def _refuse_doctype(*_: Any) -> NoReturn:
    raise ValueError("a DOCTYPE, entity declaration or external reference is not allowed")


def _force_task_lists(path: list[Any], key: str, _value: Any) -> bool:
    """Every <task> below the root is a list item, so a one-task list stays a list."""
    return key == "task" and len(path) > 0


XML_NIL = type("XmlNil", (), {"__repr__": lambda _: "xsi:nil"})()
"""An element marked xsi:nil="true": null, where an empty element is an empty string."""


_XML_SPACE = " \t\r\n"
"""XML 1.0 §2.3 S: the only characters XML treats as white space (str.isspace knows many more)."""


def _is_xml_space(text: str) -> bool:
    return not text.strip(_XML_SPACE)


def _local_name(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def _local_names(path: list[Any], key: str, value: Any) -> tuple[str, Any] | None:
    """Elements by their local name (`<ns2:task>` is `<task>`), namespace declarations dropped, `xsi:type` on a
    `<task>` dropped (JAXB marks a subclass so; the `type` field names the variant), `xsi:nil="true"` read as
    null, and white space between child elements (indentation) dropped: what JAXB and other Java stacks send.
    Text of a leaf element is kept exactly as the parser reported it."""
    if key.startswith("@"):
        name = key[1:]
        if name == "xmlns" or name.startswith("xmlns:"):
            return None
        if ":" in name and _local_name(name) == "type" and _local_name(path[-1][0]) == "task":
            return None
        return ("@nil", value) if _local_name(name) == "nil" else (key, value)
    if isinstance(value, dict):
        nil = value.pop("@nil", None)
        text = value.get("#text")
        if text is not None and _is_xml_space(text) and (nil is not None or set(value) - {"#text"}):
            del value["#text"]  # indentation between children, or around a nil element's (absent) content
        if nil is not None and nil.strip(_XML_SPACE) in ("true", "1") and not value:
            return _local_name(key), XML_NIL
        if set(value) == {"#text"}:
            value = value["#text"]
        elif not value:
            value = None
    return _local_name(key), value


def parse_xml(body: bytes, root: str, limits: Limits, charset: str | None = None) -> Any:
    """The body's root element as xmltodict data; `charset` (from Content-Type) overrides the document's."""
    try:
        document = xmltodict.parse(
            body,
            encoding=charset,
            expat=_GuardedExpat(limits),
            force_list=_force_task_lists,
            postprocessor=_local_names,
            strip_whitespace=False,  # character data is the caller's: "  padded  " stays so
        )
    except expat.ExpatError as error:
        raise BadRequest(f"malformed XML: {error}") from None
    except LookupError:
        raise BadRequest(f"Content-Type: unknown charset {charset!r}") from None
    except ValueError as error:
        raise BadRequest(f"refused XML: {error}") from None
    if not isinstance(document, dict) or list(document) != [root]:
        found = next(iter(document), "?") if isinstance(document, dict) else "?"
        raise BadRequest(f"expected a <{root}> root element, found <{found}>")
    return document[root]


def _xml_scalar(name: str, value: Any, where: str) -> Any:
    """An element's text as the JSON value it stands for. Text fields keep their characters exactly; integers,
    booleans and dates are read by the field's type, around XML white space (XML Schema's `collapse`, which
    xs:int, xs:boolean and xs:dateTime have), and an empty one is null."""
    if value is XML_NIL:
        return None
    if isinstance(value, dict):
        raise BadRequest(f"{where}: expected text, found child elements or attributes")
    if name in INT_FIELDS or name == "id" or name in BOOL_FIELDS or name in DATE_FIELDS:
        text = (value or "").strip(_XML_SPACE)
        if not text:
            return None
        if name in BOOL_FIELDS:
            if text not in ("true", "false"):
                raise BadRequest(f"{where}: expected true or false, got {value!r}")
            return text == "true"
        if name in DATE_FIELDS:
            return text
        if not _INTEGER.match(text):
            raise BadRequest(f"{where}: expected an integer, got {value!r}")
        return int(text)
    return "" if value is None else value  # an empty element is an empty string


def _empty_container(element: Any) -> bool:
    """`<task/>`, `<task></task>` or `<task>` holding nothing but white space: no children."""
    return element is None or (isinstance(element, str) and _is_xml_space(element))


def xml_task_fields(element: Any, where: str) -> dict[str, Any]:
    """A <task> element as the same dict a JSON body gives, so both go through one validation."""
    if _empty_container(element):
        return {}
    if not isinstance(element, dict):
        raise BadRequest(f"{where}: expected child elements, found text")
    fields: dict[str, Any] = {}
    for name, value in element.items():
        if name.startswith(("@", "#")):
            raise BadRequest(f"{where}: unexpected XML attribute or text {name!r}")
        if isinstance(value, list):
            raise BadRequest(f"{where}.{name}: appears more than once")
        if name == "nexts":
            fields[name] = {"tasks": xml_task_list(value, f"{where}.nexts")}
        else:
            fields[name] = _xml_scalar(name, value, f"{where}.{name}")
    return fields


def xml_task_list(element: Any, where: str) -> list[dict[str, Any]]:
    """The <task> children of a <tasks> or <nexts> element."""
    if _empty_container(element):
        return []
    if not isinstance(element, dict) or set(element) - {"task"}:
        raise BadRequest(f"{where}: expected only <task> elements")
    return [xml_task_fields(item, f"{where}[{index}]") for index, item in enumerate(element.get("task", []))]


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
