"""XML bodies of /tracking: reading a request safely, as JAXB and other Java stacks write it, and writing an
answer.

Reading is xmltodict on a guarded expat parser, so that a hostile body costs little and changes nothing:

1. a DOCTYPE (hence entity declarations and external references) is refused as soon as it starts, before
   anything in it is read, let alone expanded (`_refuse_doctype`);
2. every element start and end is counted (`_XmlBounds.enter`, `leave`): a body nesting deeper, holding more
   elements, or an element more attributes than a create may is refused at that element; xmltodict's work per
   element grows with depth, so 200,000 nested elements would otherwise take minutes;
3. the body is fed to expat 64 KiB at a time, and after each slice the markup expat holds unfinished is bounded
   (`_XmlBounds.refuse_long_markup`): expat reports a tag only once it has read all of it, and a million
   attributes in one tag take over a second of expat alone.

xmltodict takes the parser module as `xmltodict.parse(..., expat=module)`: it calls `module.ParserCreate()`,
sets its handlers as attributes of the parser (`parser.StartElementHandler = ...`) and calls `parser.Parse`.
`_GuardedExpat` is that module: its `ParserCreate` installs guard 1 and returns a `_GuardedParser`, which wraps
the element handlers xmltodict sets with counting ones (guard 2) and feeds `Parse` in slices (guard 3).

The parsed document is then read by JAXB's conventions (`_local_names`) and turned into the same dicts a JSON
body gives (`xml_task_fields`, `xml_task_list`), so both go through one validation.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn
from xml.parsers import expat

import xmltodict

from models import BOOL_FIELDS, DATE_FIELDS, INT_FIELDS, InvalidOperation, xml_safe
from rest.negotiation import BadRequest
from web.limits import RequestLimits

_INTEGER = re.compile(r"^[+-]?[0-9]+$")


# ---- writing ----------------------------------------------------------------------------------------------------


def _xml_value(value: Any) -> Any:
    """Strings other tools stored may hold characters XML 1.0 cannot carry: they go out as U+FFFD, so every
    XML answer parses (the gateway itself refuses such strings on input)."""
    return xml_safe(value) if type(value) is str else value


def _xml_task(task: dict[str, Any]) -> dict[str, Any]:
    out = {name: _xml_value(value) for name, value in task.items()}
    if "nexts" in task:
        out["nexts"] = {"task": [_xml_task(t) for t in task["nexts"]["tasks"]]}
    return out


def xml_document(root: str, body: dict[str, Any]) -> bytes:
    """A Task (`root` "task"), a tasks object (`root` "tasks", `body` `{"tasks": [...]}`) or an error (`root`
    "error") as an XML document, UTF-8; a task's nexts are `<nexts><task>...</task></nexts>`."""
    body = {"task": [_xml_task(task) for task in body["tasks"]]} if root == "tasks" else _xml_task(body)
    text: str = xmltodict.unparse({root: body}, encoding="utf-8")
    if "\r" in text:
        # XML 1.0 §2.11: a parser reads a literal CR (alone or before LF) as LF. Written as a character
        # reference, a CR survives any conforming parser, so a task read as XML and put back is unchanged.
        text = text.replace("\r", "&#13;")
    return text.encode()


# ---- the guarded parser -----------------------------------------------------------------------------------------


_ELEMENTS_PER_TASK = 64
"""A task has about forty fields: an XML create may hold this many elements per task it may create."""

_MARKUP_BYTES_PER_ATTRIBUTE = 4096
"""A tag may be this long per attribute TRACKING_XML_MAX_ATTRIBUTES allows (plus one for its name)."""

_FEED_BYTES = 64 * 1024
"""expat is fed this much at a time, so a tag growing past its bound is refused before expat has read it."""


class _GuardedExpat:
    """The pyexpat module as xmltodict calls it, making guarded parsers: a DOCTYPE, an entity declaration or an
    external reference is refused as soon as it starts (guard 1), and the parser counts into a fresh
    `_XmlBounds` per document."""

    ExpatError = expat.ExpatError

    def __init__(self, limits: RequestLimits) -> None:
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


class _GuardedParser:
    """An expat parser as xmltodict sees it (every attribute passes through to expat), except that the element
    handlers xmltodict sets are wrapped to count into `_XmlBounds` (guard 2) and `Parse` feeds expat in slices
    (guard 3)."""

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


class _XmlBounds:
    """What an XML body may hold, counted as expat reports it: depth, elements, attributes per element, and the
    length of one piece of markup. It refers to nothing of the parser's, so the parser, its handlers and what
    they built form no reference cycle and are freed with the request, not at the next full collection."""

    def __init__(self, limits: RequestLimits) -> None:
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


# ---- reading what JAXB sends ----------------------------------------------------------------------------------


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


def parse_xml(body: bytes, root: str, limits: RequestLimits, charset: str | None = None) -> Any:
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


_XS_BOOLEAN = {"true": True, "false": False, "1": True, "0": False}
"""xs:boolean's lexical space (XML Schema 1.0 part 2, 3.2.2.1), which a schema-bound XML stack may write."""


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
            if text not in _XS_BOOLEAN:
                raise BadRequest(f"{where}: expected true or false (or 1 or 0), got {value!r}")
            return _XS_BOOLEAN[text]
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
