"""The task schema: the stored layout (one document per task in `tasks`, `_id` the int64 task id, the API's
hyphenated field names, dates as BSON dates, `nexts`/`previous` arrays of int64 ids) and the validated input
shapes both front ends use.

Field names are the hyphenated API names; Python attribute names are their snake_case twins.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NotRequired

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from models.errors import InvalidOperation

INT64_MAX = 2**63 - 1
SERVER_ID_MAX = 2**53 - 1
"""Server-assigned ids stay at or below this (JavaScript's Number.MAX_SAFE_INTEGER), so dashboards hold them
exactly."""
COUNTER_FOLLOWS_IDS_UP_TO = 2**52
"""Client-given ids up to here move the id counter past them (so server ids never collide with them). Larger
client ids sit at the top of the id space and leave the counter where it is: no valid id a client may give can
use up the 2**52 server ids above the counter, so no request can make later creates fail."""
TASK_ID_RULE = "a decimal int64 > 0"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
DEFAULT_TYPE = "task"
NAVIGABLE_TYPES = frozenset({"navigable-execution-task", "navigable-execution-task-list"})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MILLISECONDS = re.compile(r"-?[0-9]+")
"""Epoch milliseconds as text: ASCII digits only (str.isdigit takes every script's digits, which int() reads)."""
_MOST_EPOCH_DIGITS = 15
"""Digits of the longest epoch milliseconds a date can be (year 9999 is 253402300799999)."""
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
"""The date-times taken as text: a calendar date, optionally a time (`T`, or a space as RFC 3339 allows) with
seconds, a fraction and a UTC offset (`Z`, `+01:00`, `+0100`, `+01`)."""
_JSON_SPACE = " \t\r\n"
"""The white space around a value JSON and XML know (str.strip would also take Unicode's: a no-break space)."""


def parse_datetime(value: Any) -> datetime:
    """Accept ISO 8601 (any offset; none means UTC) or integer epoch milliseconds; keep millisecond precision.

    BSON dates hold milliseconds, so the value is truncated here rather than silently by the driver.
    """
    if isinstance(value, bool):
        raise ValueError("expected an ISO 8601 date-time or epoch milliseconds")
    if isinstance(value, int):
        try:  # in whole milliseconds: a float division loses one far from 1970 (9999-12-31T23:59:59.999Z)
            return _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise ValueError("epoch milliseconds out of range") from None
    elif isinstance(value, str):
        text = value.strip(_JSON_SPACE)
        if _EPOCH_MILLISECONDS.fullmatch(text):
            # int() of thousands of digits is slow, and then refused with CPython's own message
            if len(text.lstrip("-").lstrip("0")) > _MOST_EPOCH_DIGITS:
                raise ValueError("epoch milliseconds out of range")
            return parse_datetime(int(text))
        if not _DATE_TIME.fullmatch(text):  # datetime.fromisoformat takes more: week dates, any separator
            raise ValueError("expected an ISO 8601 date-time or epoch milliseconds")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("expected an ISO 8601 date-time or epoch milliseconds") from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise ValueError("expected an ISO 8601 date-time or epoch milliseconds")
    try:
        # Moving 0001-01-01T00:00+01:00 to UTC leaves the years datetime can hold.
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("date-time out of range (years 1 to 9999 in UTC)") from None
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot carry, even escaped (and lone surrogates, which no UTF-8 store can)."""


def refuse_unstorable_text(value: str) -> str:
    """Strings are served in XML too: one that XML 1.0 cannot carry is refused rather than stored."""
    found = _XML_FORBIDDEN.search(value)
    if found is not None:
        raise ValueError(f"contains U+{ord(found.group()):04X}, a character XML 1.0 does not allow")
    return value


def xml_safe(value: str) -> str:
    """`value` with every character XML 1.0 cannot carry replaced by U+FFFD (for text other tools stored)."""
    return _XML_FORBIDDEN.sub("\ufffd", value)


def parse_task_id(value: object, where: str) -> int:
    """The one task-id rule of both front ends: decimal digits (no sign, exponent or space) of an int64 > 0."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= INT64_MAX:
        raise InvalidOperation(f"{where}: {text!r} is not a task id ({TASK_ID_RULE})")
    return int(text)


DateTime = Annotated[datetime, BeforeValidator(parse_datetime)]
Text = Annotated[str, AfterValidator(refuse_unstorable_text)]
TaskId = Annotated[int, Field(gt=0, le=INT64_MAX)]
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]


@functools.lru_cache(maxsize=4096)
def format_datetime(value: datetime) -> str:
    """`2026-11-22T18:00:00.000Z`: ISO 8601 in UTC, with milliseconds and `Z`, however the date came in.

    Cached: a list of tasks created together repeats the same few timestamps thousands of times."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def describe_invalid_fields(
    error: ValidationError, prefix: tuple[Any, ...] = (), rename: Callable[[str], str] = str, limit: int = 5
) -> str:
    """`tasks[0].number-of-retries: Input should be a valid integer; …`, naming each offending field."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:limit]:  # built once: there may be many
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"].removeprefix("Value error, ")
        parts.append(f"{_location(prefix + tuple(item['loc']), rename)}: {message}")
    if error.error_count() > limit:
        parts.append(f"and {error.error_count() - limit} more")
    return "; ".join(parts)


def _location(loc: tuple[Any, ...], rename: Callable[[str], str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{rename(part)}" if text else rename(str(part)))
    return text or "body"


def now_utc() -> datetime:
    """The current time at BSON precision (milliseconds)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class TaskFields(BaseModel):
    """Every client-settable field of a task, in the order responses list them."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    status: Text | None = None
    job_id: Text | None = Field(default=None, alias="job-id")
    root: bool | None = None
    name: Text | None = None
    description: Text | None = None
    start_time: DateTime | None = Field(default=None, alias="start-time")
    finish_time: DateTime | None = Field(default=None, alias="finish-time")
    lock: Text | None = None
    workflow_id: Text | None = Field(default=None, alias="workflow-id")
    match_id: Text | None = Field(default=None, alias="match-id")
    rollback_status: Text | None = Field(default=None, alias="rollback-status")
    execution_code: Text | None = Field(default=None, alias="execution-code")
    execution_description: Text | None = Field(default=None, alias="execution-description")
    initial_artifact_status: Text | None = Field(default=None, alias="initial-artifact-status")
    type: Text | None = None
    # execution-task
    main_artifact: Text | None = Field(default=None, alias="main-artifact")
    final_status: Text | None = Field(default=None, alias="final-status")
    condition: Text | None = None
    path: Text | None = None
    running_status: Text | None = Field(default=None, alias="running-status")
    workflow: Text | None = None
    behaviour_on_error: Text | None = Field(default=None, alias="behaviour-on-error")
    number_of_retries: Int32 | None = Field(default=None, alias="number-of-retries")
    wait_between_retries: Int32 | None = Field(default=None, alias="wait-between-retries")
    codes_to_do_rollback: Text | None = Field(default=None, alias="codes-to-do-rollback")
    rollback_workflow: Text | None = Field(default=None, alias="rollback-workflow")
    mapping_list: Text | None = Field(default=None, alias="mapping-list")
    output_mapping_list: Text | None = Field(default=None, alias="output-mapping-list")
    order_by: Text | None = Field(default=None, alias="order-by")
    # execution-task-list
    definition_id: Text | None = Field(default=None, alias="definition-id")


class TaskCreate(TaskFields):
    """A task in a create request; nested `nexts` are created too and linked after their parent.

    Server-owned timestamps (`creation-timestamp`, `update-timestamp`) are accepted and ignored: only the server
    sets them.
    """

    id: TaskId | None = None
    creation_timestamp: Any = Field(default=None, alias="creation-timestamp", exclude=True)
    update_timestamp: Any = Field(default=None, alias="update-timestamp", exclude=True)
    nexts: NestedTasks | None = None


class NestedTasks(BaseModel):
    """A navigable task's `nexts`: a `tasks` object, as in the legacy schema."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tasks: list[TaskCreate] = Field(default_factory=list)


def _optional_items(model: type[BaseModel], skip: frozenset[str]) -> dict[str, Any]:
    """The model's fields as TypedDict items under their API names, each optional, with the same types and
    constraints (validators included): one declaration, two shapes."""
    items: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in skip:
            annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            items[info.alias or name] = NotRequired[annotation]
    return items


_STRICT_FORBID = ConfigDict(extra="forbid", strict=True)
_typed_dict: Any = TypedDict  # its functional form, with items computed (mypy wants literal items)
_CREATE_ITEMS = {**_optional_items(TaskCreate, frozenset({"nexts"})), "nexts": NotRequired["NestedTaskData | None"]}
TaskCreateData = _typed_dict("TaskCreateData", _CREATE_ITEMS)
"""A task of a create as plain data, validated as TaskCreate validates it (pydantic-core builds the dicts
directly: no model instance per task, no dump afterwards)."""
NestedTaskData = _typed_dict("NestedTaskData", {"tasks": NotRequired["list[TaskCreateData]"]})
"""A create's body and a navigable task's `nexts` as plain data (NestedTasks' twin)."""
TaskCreateData.__pydantic_config__ = NestedTaskData.__pydantic_config__ = _STRICT_FORBID
SERVER_OWNED_ON_CREATE = frozenset({"creation-timestamp", "update-timestamp"})
"""Fields a create accepts and ignores (TaskCreate excludes them)."""
_CREATE_BODY: TypeAdapter[dict[str, Any]] = TypeAdapter(NestedTaskData)


def created_tasks_of(body: Any) -> list[dict[str, Any]]:
    """The tasks of a create body (`{"tasks": [...]}`, JSON-shaped) validated in one pydantic-core call, as
    plain data under API names (nested `nexts` included; nulls and ignored fields still in); ValidationError
    locates each problem as NestedTasks would (`tasks[0].name`), InvalidOperation the fields no create takes
    (`refuse_unknown_fields`)."""
    refuse_unknown_fields(body)
    tasks: list[dict[str, Any]] = _CREATE_BODY.validate_python(body).get("tasks", [])
    return tasks


_CREATE_FIELDS = frozenset(_CREATE_ITEMS)
_NESTED_FIELDS = frozenset({"tasks"})


def refuse_unknown_fields(body: Any, limit: int = 5) -> None:
    """InvalidOperation naming the fields of a create body no create takes (`tasks[0].colour: unknown field`, as
    validation words it), the first `limit` of them and how many more. Found first, a set difference per object:
    pydantic builds an error object for every unknown member, seconds of CPU for a body of a million of them."""
    found: list[str] = []
    count = 0
    pending: list[tuple[Any, frozenset[str], str]] = [(body, _NESTED_FIELDS, "")]
    while pending:
        item, known, where = pending.pop()
        if not isinstance(item, dict):
            continue  # a shape validation refuses, naming it
        unknown = [name for name in item if name not in known] if len(item.keys() - known) else []
        count += len(unknown)
        found.extend(f"{where}.{name}" if where else str(name) for name in unknown[: max(limit - len(found), 0)])
        children = item.get("tasks") if known is _NESTED_FIELDS else item.get("nexts")
        if known is _NESTED_FIELDS and isinstance(children, list):
            pending.extend((task, _CREATE_FIELDS, f"{where}{'.' if where else ''}tasks[{index}]")
                           for index, task in reversed(list(enumerate(children))))  # fmt: skip
        elif known is _CREATE_FIELDS:
            pending.append((children, _NESTED_FIELDS, f"{where}.nexts"))
    if count:
        more = f"; and {count - len(found)} more" if count > len(found) else ""
        raise InvalidOperation("; ".join(f"{place}: unknown field" for place in found) + more)


class TaskPatch(TaskFields):
    """A merge update: fields present replace, null clears, absent stay. Links never change here."""

    id: TaskId | None = None
    creation_timestamp: Any = Field(default=None, alias="creation-timestamp", exclude=True)
    update_timestamp: Any = Field(default=None, alias="update-timestamp", exclude=True)


CLIENT_FIELDS: dict[str, str] = {name: info.alias or name for name, info in TaskFields.model_fields.items()}
"""Python attribute name -> stored/API field name, for every client-settable field."""

INT_FIELDS = frozenset({"number-of-retries", "wait-between-retries"})
BOOL_FIELDS = frozenset({"root"})
DATE_FIELDS = frozenset({"start-time", "finish-time", "creation-timestamp", "update-timestamp"})
RESPONSE_FIELD_ORDER: tuple[str, ...] = tuple(
    dict.fromkeys(("id", "status", "creation-timestamp", "update-timestamp", *CLIENT_FIELDS.values()))
)
"""Every Task field in the order the API writes them (id and server timestamps first, as the legacy guide)."""
