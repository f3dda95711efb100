"""The stored layout of a task (what MongoDB-based ops tooling reads and writes: one document per task, `_id` the
task id, the API's field names, `nexts` and `previous` linking both ways) as data: the BSON kind of every field,
derived from the declared task fields, and the three things made from it so they cannot disagree:

- the `$jsonSchema` validator installed on `tasks`, so a tool writing a wrong type gets MongoDB's own error;
- `readable_task`, which every read goes through, so a document another tool wrote with a wrong type never
  fails a reader: the field is coerced when that is exact, else left out (and logged once);
- `field_problems`, what `tracking-gateway check` reports as wrong types.
"""

from __future__ import annotations

import decimal
import logging
import math
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Required, cast

from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from typing_extensions import TypedDict

from models.task import DATE_FIELDS, INT32_MAX, INT32_MIN, INT64_MAX, TaskFields, parse_datetime

log = logging.getLogger(__name__)

RawDocument = dict[str, Any]
"""A document as MongoDB hands it over: whatever a tool stored (a task before `readable_task`, a history entry,
a counter, a lease)."""
TaskDoc = TypedDict(
    "TaskDoc",
    {
        "_id": Required[int],
        "nexts": list[int],
        "previous": list[int],
        "status": str | None,
        "creation-timestamp": datetime | None,
        "update-timestamp": datetime | None,
        "job-id": str | None,
        "root": bool | None,
        "name": str | None,
        "description": str | None,
        "start-time": datetime | None,
        "finish-time": datetime | None,
        "lock": str | None,
        "workflow-id": str | None,
        "match-id": str | None,
        "rollback-status": str | None,
        "execution-code": str | None,
        "execution-description": str | None,
        "initial-artifact-status": str | None,
        "type": str | None,
        "main-artifact": str | None,
        "final-status": str | None,
        "condition": str | None,
        "path": str | None,
        "running-status": str | None,
        "workflow": str | None,
        "behaviour-on-error": str | None,
        "number-of-retries": int | None,
        "wait-between-retries": int | None,
        "codes-to-do-rollback": str | None,
        "rollback-workflow": str | None,
        "mapping-list": str | None,
        "output-mapping-list": str | None,
        "order-by": str | None,
        "definition-id": str | None,
    },
    total=False,
)
"""A task as readers see it (`readable_task`): `_id` the task id, the API's hyphenated field names, BSON dates as
aware UTC datetimes, `nexts`/`previous` as lists of task ids. The functional form because the keys are
hyphenated; total=False because a tool may leave any field out, and a projected read holds only what it asked
for. It describes, it does not validate: a document becomes a TaskDoc by passing `readable_task` (which keeps
fields a tool added, unknown to this type), and `tests/unit/test_stored_task.py` checks the keys here against
the declared fields (FIELD_KINDS)."""
MongoClient = AsyncMongoClient[RawDocument]
Database = AsyncDatabase[RawDocument]
Collection = AsyncCollection[RawDocument]
"""The driver's types as the graph store uses them: documents are plain dicts, typed once read."""

STRING, INT32, BOOL, DATE = "string", "int", "bool", "date"
_BSON_TYPE_OF_PYTHON = {str: STRING, int: INT32, bool: BOOL, datetime: DATE}
LINK_FIELDS = ("nexts", "previous")


def _kind(annotation: Any) -> str:
    """The BSON type of a TaskFields annotation such as `Text | None` or `Int32 | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = (arg for arg in typing.get_args(annotation) if arg is not type(None))
        return _kind(inner)
    if typing.get_origin(annotation) is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    return _BSON_TYPE_OF_PYTHON[annotation]


FIELD_KINDS: dict[str, str] = {
    **{(info.alias or name): _kind(info.annotation) for name, info in TaskFields.model_fields.items()},
    **dict.fromkeys(DATE_FIELDS, DATE),
}
"""Every stored task field but `_id` and the links, with its BSON type."""


EARLIEST_DATE = datetime(1, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
"""The dates Python (and so the gateway) can hold: BSON dates outside years 1-9999 are read as absent."""


def task_validator() -> dict[str, Any]:
    """The `$jsonSchema` of a stored task. Fields are optional (null allowed, as absent), but typed; `_id` and
    the link arrays are required int64s; other fields a tool adds are allowed and ignored by the gateway.
    Dates must lie in years 1-9999 (`$jsonSchema` has no date bounds, so that is a query clause beside it)."""
    properties: dict[str, Any] = {
        "_id": {"bsonType": "long", "minimum": 1, "description": "the task id: an int64 > 0"},
        **{name: {"bsonType": "array", "items": {"bsonType": "long"}, "uniqueItems": True} for name in LINK_FIELDS},
    }
    for name, kind in FIELD_KINDS.items():
        properties[name] = {"bsonType": [kind, "null"]}
    schema = {"$jsonSchema": {"bsonType": "object", "required": ["_id", *LINK_FIELDS], "properties": properties}}
    return {"$and": [schema, *(_date_in_range(name) for name in sorted(DATE_FIELDS))]}


def _date_in_range(name: str) -> dict[str, Any]:
    return {"$or": [{name: {"$not": {"$type": "date"}}}, {name: {"$gte": EARLIEST_DATE, "$lte": LATEST_DATE}}]}


def readable_date_expression(path: str) -> dict[str, Any]:
    """An aggregation expression: the value at `path` (say "$lastUpdate") when it is a date readers can hold,
    else null, so that aggregations sort, page and compare dates as `readable_task` serves them."""
    in_range = [{"$eq": [{"$type": path}, "date"]}, {"$gte": [path, EARLIEST_DATE]}, {"$lte": [path, LATEST_DATE]}]
    return {"$cond": [{"$and": in_range}, path, None]}


def counter_validator() -> dict[str, Any]:
    return {
        "$jsonSchema": {
            "bsonType": "object",
            "required": ["_id", "seq"],
            "properties": {"_id": {"bsonType": "string"}, "seq": {"bsonType": ["long", "int"]}},
        }
    }


# ---- reading what other tools wrote ----------------------------------------------------------------------------


def as_task_id(value: Any) -> int | None:
    """A stored id as a task id: an integer (or a float holding one exactly, as mongosh writes) in range."""
    if type(value) is int or type(value) is Int64:
        return int(value) if 0 < value <= INT64_MAX else None
    if type(value) is float and value.is_integer() and 0 < value <= INT64_MAX:
        return int(value)
    return None


def integral_number(value: Any) -> int | None:
    """A stored number of any BSON numeric type (int32, int64, double, Decimal128) as the integer it holds
    exactly, else None: how MongoDB's comparisons see it."""
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return None
    try:
        return int(value) if value == int(value) else None
    except (ValueError, OverflowError, ArithmeticError):
        return None


def _coerced(kind: str, value: Any) -> Any:
    """`value` as `kind` when that is exact, else None (the field is then left out)."""
    if kind == STRING:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float) and not (isinstance(value, float) and not math.isfinite(value)):
            return str(value)
        return None
    if kind == INT32:
        exact = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not exact or not INT32_MIN <= value <= INT32_MAX:
            return None
        return int(value)
    if kind == DATE and isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            return None
    return None


def _has_kind(kind: str, value: Any) -> bool:
    if kind == STRING:
        return type(value) is str
    if kind == INT32:
        return type(value) is int and INT32_MIN <= value <= INT32_MAX
    if kind == BOOL:
        return type(value) is bool
    return isinstance(value, datetime)


def is_int64_id(value: Any) -> bool:
    """An id as the layout stores it: an int64 > 0."""
    return type(value) is Int64 and value > 0


def field_problems(doc: RawDocument) -> list[str]:
    """The names of the fields of `doc` whose stored type is not the layout's (links and `_id` included)."""
    problems = []
    if not is_int64_id(doc.get("_id")):
        problems.append("_id")
    for name in LINK_FIELDS:
        value = doc.get(name)
        if not isinstance(value, list) or not all(map(is_int64_id, value)):
            problems.append(name)
    for name, value in doc.items():
        kind = FIELD_KINDS.get(name)
        if kind is not None and value is not None and not _has_kind(kind, value):
            problems.append(name)
    return problems


_warned: set[tuple[str, str]] = set()
_WARNINGS_KEPT = 10_000


def value_problem(value: Any) -> str:
    """Why a stored value is not served, in words for logs and `check`."""
    if isinstance(value, DatetimeMS):
        return "holds a date outside years 1-9999"
    return f"has type {type(value).__name__}, which the layout does not allow"


def _id_problem(value: Any) -> str:
    """Why a stored `_id` names no task: a number of the wrong value (-5, 2.5) is told apart from a wrong type."""
    if isinstance(value, int | float | Decimal128) and not isinstance(value, bool):
        return "is no task id (an int64 > 0)"
    return value_problem(value)


def _warn_once(task_id: Any, field: str, problem: str) -> None:
    """One warning per task and field per process: a bad document read a thousand times logs once."""
    key = (repr(task_id), field)  # any stored _id: unhashable ones (a document, Decimal128) and NaN included
    if key in _warned or len(_warned) >= _WARNINGS_KEPT:
        return
    _warned.add(key)
    served = "the document is served as no task" if field == "_id" else "served without it"
    log.warning("task %r: stored %s %s; %s (run `tracking-gateway check`)", task_id, field, problem, served)


def _links(task_id: Any, name: str, value: Any) -> list[int]:
    """The task ids in a stored link array, each once, in stored order."""
    if not isinstance(value, list):
        _warn_once(task_id, name, value_problem(value))
        return []
    ids = [as_task_id(item) for item in value]
    if None in ids:
        _warn_once(task_id, name, "holds values that are no task ids")
    unique = list(dict.fromkeys(i for i in ids if i is not None))
    if len(unique) != len(value) and None not in ids:
        _warn_once(task_id, name, "repeats ids (each is served once)")
    return unique


def has_repeated_ids(value: Any) -> bool:
    """Whether a stored link array names one task id twice (the layout says each id once: the edge is one edge).
    Items that are no task ids (a document, a string) are another problem, not counted here."""
    if not isinstance(value, list):
        return False
    ids = [i for i in map(as_task_id, value) if i is not None]
    return len(set(ids)) != len(ids)


def _is_clean(doc: RawDocument, links: tuple[str, ...] = LINK_FIELDS) -> bool:
    """The fast path: true for every document the gateway wrote itself (read with `links` among its fields)."""
    task_id = doc.get("_id")
    if type(task_id) is not Int64 or task_id < 1:
        return False
    for name, value in doc.items():
        kind = FIELD_KINDS.get(name)
        if kind is not None and value is not None and not _has_kind(kind, value):
            return False
    return all(
        type(doc.get(name)) is list
        and all(type(i) is Int64 and i > 0 for i in doc[name])
        and len(set(doc[name])) == len(doc[name])
        for name in links
    )


_NONE = type(None)
_COLUMN_TYPES = {STRING: {str, _NONE}, BOOL: {bool, _NONE}, DATE: {datetime, _NONE}, INT32: {int, _NONE}}
"""The Python types a column of each kind may hold in clean documents (None: absent or null)."""


def _columns_clean(docs: list[RawDocument], fields: Iterable[str]) -> bool:
    """Whether `_is_clean` holds for every document of a projected read (only `_id` and `fields` present), one
    field at a time over all documents: the same rule, its loops in C (map, set) rather than per document."""
    ids = list(map(itemgetter("_id"), docs))
    if not set(map(type, ids)) <= {Int64} or min(ids, default=1) < 1:
        return False
    for name in fields:
        values: list[Any] = list(map(dict.get, docs, repeat(name)))  # dict.get: no bound method per document
        if name in LINK_FIELDS:
            if not set(map(type, values)) <= {list}:
                return False
            items = list(chain.from_iterable(values))
            if not set(map(type, items)) <= {Int64} or min(items, default=1) < 1:
                return False
            if sum(map(len, map(set, values))) != len(items):  # an id twice in one array
                return False
            continue
        kind = FIELD_KINDS.get(name)
        if kind is None:
            continue
        if not set(map(type, values)) <= _COLUMN_TYPES[kind]:
            return False
        if kind == INT32:
            present = [value for value in values if value is not None]
            if present and not (min(present) >= INT32_MIN and max(present) <= INT32_MAX):
                return False
    return True


def readable_value(name: str, value: Any) -> Any:
    """One stored field's value as readers see it (the rule of `readable_task`); None when it is left out."""
    kind = FIELD_KINDS.get(name)
    if kind is None or value is None or _has_kind(kind, value):
        return value
    return _coerced(kind, value)


def readable_task(doc: RawDocument) -> TaskDoc | None:
    """`doc` as readers may rely on it: integer id and links, every known field of its declared type or absent.

    Returns `doc` itself when it is already so, a repaired copy when not, and None for a document whose `_id`
    is not a task id at all (a string or an ObjectId): such a document is not a task the API can name.
    """
    if _is_clean(doc):
        return cast(TaskDoc, doc)
    task_id = as_task_id(doc.get("_id"))
    if task_id is None:
        _warn_once(doc.get("_id"), "_id", _id_problem(doc.get("_id")))
        return None
    repaired: RawDocument = {"_id": task_id}
    for name, value in doc.items():
        if name == "_id" or name in LINK_FIELDS:
            continue
        readable = readable_value(name, value)
        if readable is None and value is not None:
            _warn_once(task_id, name, value_problem(value))
        else:
            repaired[name] = readable
    for name in LINK_FIELDS:
        repaired[name] = _links(task_id, name, doc.get(name, []))
    return cast(TaskDoc, repaired)


def readable_projected_task(doc: RawDocument, links: tuple[str, ...]) -> TaskDoc | None:
    """`readable_task` for one document read with only the link fields `links` among its fields (a change
    event's task, projected): a clean document is returned as it is, rather than copied for the links left out."""
    return cast(TaskDoc, doc) if _is_clean(doc, links) else readable_task(doc)


def as_dicts(tasks: list[TaskDoc]) -> list[RawDocument]:
    """The same list typed as plain dicts (what a TaskDoc is at run time), for passes over a field of every task
    in C (`map(dict.get, docs, repeat(name))`), which TaskDoc's literal keys do not allow."""
    return cast(list[RawDocument], tasks)


def readable_tasks(docs: Iterable[RawDocument]) -> list[TaskDoc]:
    return [task for task in map(readable_task, docs) if task is not None]


def readable_projected_tasks(docs: list[RawDocument], projection: Mapping[str, Any]) -> list[TaskDoc]:
    """`readable_tasks` for documents read with `projection` (inclusive): a link field left out of it is not
    missing, so a clean document still takes the fast path (a repaired one gets the absent links as []). The
    whole list is checked a column at a time first (the usual answer: all clean, returned as they are)."""
    if _columns_clean(docs, projection):
        return cast(list[TaskDoc], docs)
    links = tuple(name for name in LINK_FIELDS if name in projection)
    readable = (cast(TaskDoc, doc) if _is_clean(doc, links) else readable_task(doc) for doc in docs)
    return [task for task in readable if task is not None]
