"""The eleven operations of the legacy Tracking API under /tracking (NFV Director Tracking API Guide 4.1)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BeforeValidator, ValidationError
from starlette.concurrency import run_in_threadpool

from models import (
    ChangeUnread,
    GraphStore,
    Preconditions,
    StorageUnavailable,
    TaskDoc,
    TaskPatch,
    describe_invalid_fields,
    etag_of,
)
from models.task import INT64_MAX, created_tasks_of
from rest.conditional import conditional_list, preconditions, refused_create, refused_read, tagged
from rest.encoding import encode, navigable_next_ids, parse_json, refuse_repeated_members, task_to_api
from rest.guard import path_value
from rest.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotency_key
from rest.negotiation import BadRequest, Format, request_charset, request_format
from rest.parameters import refuse_repeated_parameters
from rest.schemas import NOT_MODIFIED, Task, TaskList, answers, body_of
from rest.xml import parse_xml, xml_task_fields, xml_task_list
from web.limits import RequestLimits
from web.state import caller_store, gateway_state


def _format(request: Request) -> Format:
    """The response format TrackingGuard negotiated from Accept."""
    fmt: Format = request.state.response_format
    return fmt


OPERATION_IDS = {
    "create_tasks": "createTasks",
    "get_task": "getTask",
    "get_nexts": "getNextTasks",
    "get_previous": "getPreviousTasks",
    "get_job_tasks": "getJobTasks",
    "update_task": "updateTask",
    "add_nexts": "addNextTasks",
    "add_previous": "addPreviousTasks",
    "delete_task": "deleteTask",
    "remove_nexts": "deleteNextTasks",
    "remove_previous": "deletePreviousTasks",
}
"""The OpenAPI operationIds, which name the functions of generated clients."""

router = APIRouter(
    prefix="/tracking",
    tags=["Task"],
    generate_unique_id_function=lambda route: OPERATION_IDS[route.name],
    dependencies=[Depends(refuse_repeated_parameters)],
)


def _decimal_digits(value: Any) -> Any:
    """Path ids are plain decimal digits: no sign, no exponent, no fraction, no spaces."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("not a decimal integer")
    return value


def _true_or_false(value: Any) -> Any:
    """`root` is `true` or `false`, as its error message says: alone, pydantic would also take yes, on, 1…"""
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("not true or false")
    return value


TaskIdPath = Annotated[
    int,
    BeforeValidator(_decimal_digits),
    Path(description="Task id", gt=0, le=INT64_MAX, json_schema_extra={"format": "int64"}),
]
StatusQuery = Annotated[
    list[str] | None, Query(description="status (repeat the parameter for several: status=aaa&status=bbb)")
]
TypeQuery = Annotated[str | None, Query(description="type")]


def _store(request: Request) -> GraphStore:
    """The graph store as the request's caller may see it: its job scope in every query (web.state)."""
    return caller_store(request.scope)


def _limits(request: Request) -> RequestLimits:
    return gateway_state(request)["limits"]


def _respond(payload: dict[str, Any], fmt: Format) -> Response:
    return Response(encode(payload, fmt), media_type=fmt.value)


_XML_INLINE_TASKS = 500
"""Larger XML answers are encoded in a worker thread: xmltodict takes about 40 µs a task, so a 10,000-task answer
held the event loop 0.4 s in one go, and every other request of the gateway (/healthz too) waited. In the thread
the loop gets its turns (the interpreter switches threads every 5 ms). JSON (orjson) needs no thread: 3 ms."""


async def _respond_tasks(tasks: list[dict[str, Any]], fmt: Format) -> Response:
    """A tasks object (`{"tasks": {"tasks": tasks}}`) as an answer in `fmt`."""
    payload = {"tasks": {"tasks": tasks}}
    if fmt is Format.XML and len(tasks) > _XML_INLINE_TASKS:
        return Response(await run_in_threadpool(encode, payload, fmt), media_type=fmt.value)
    return _respond(payload, fmt)


async def _tasks_response(store: GraphStore, docs: list[TaskDoc], fmt: Format) -> Response:
    linked = await _linked(store, docs)
    return await _respond_tasks([task_to_api(doc, linked) for doc in docs], fmt)


def task_response(doc: TaskDoc, linked: Mapping[int, TaskDoc], fmt: Format) -> Response:
    """A task object (`{"task": …}`) as an answer in `fmt`, a navigable task's next tasks from `linked`."""
    return _respond({"task": task_to_api(doc, linked)}, fmt)


async def _linked(store: GraphStore, docs: list[TaskDoc]) -> dict[int, TaskDoc]:
    """The next tasks the answer of navigable `docs` shows, read after them."""
    wanted = navigable_next_ids(docs)
    return await store.get_tasks(wanted) if wanted else {}


_T = TypeVar("_T")


async def _answer_of_change(answer: Awaitable[_T], subject: str) -> _T:
    """The answer of a change MongoDB committed: a read it needs failing after the commit is no refusal (503
    says nothing changed), but ChangeUnread (504) saying the change was made and what to read again."""
    try:
        return await answer
    except StorageUnavailable as error:
        raise ChangeUnread(subject) from error


def _task_ids(request: Request, parameter: str, values: list[str] | None) -> list[int]:
    """Ids from a repeated query parameter: decimal int64 > 0, at least one, at most the configured number."""
    return _limits(request).task_ids(values, parameter)


async def _body_fields(request: Request, root: str) -> Any:
    """The request body as JSON-shaped data, whatever its Content-Type (JSON or XML), within the limits: a
    create's tasks counted (`tasks`), then a JSON body bounded before anything else reads it (the members check
    reads it again, validation builds an error per member)."""
    content_type = request.headers.get("content-type")
    fmt = request_format(content_type)
    body = await request.body()
    limits = _limits(request)
    if fmt is Format.JSON:
        data = parse_json(body)
        if root == "tasks" and isinstance(data, dict):
            limits.refuse_oversized_creation(data.get("tasks"))
        limits.refuse_oversized_document(data, "body")
        refuse_repeated_members(body)
        return data
    charset = request_charset(content_type)
    if len(body) <= _XML_INLINE_BYTES:
        data = _xml_fields(body, root, limits, charset)
    else:
        data = await run_in_threadpool(_xml_fields, body, root, limits, charset)
    if root == "tasks":
        limits.refuse_oversized_creation(data.get("tasks"))
    return data


_XML_INLINE_BYTES = 64 * 1024
"""Larger XML bodies are read in a worker thread: expat and xmltodict take about a second per 10 MB, during
which the event loop keeps serving other requests (and /healthz)."""


def _xml_fields(body: bytes, root: str, limits: RequestLimits, charset: str | None) -> Any:
    element = parse_xml(body, root, limits, charset)
    return {"tasks": xml_task_list(element, "tasks")} if root == "tasks" else xml_task_fields(element, "task")


async def _created_tasks(request: Request) -> list[dict[str, Any]]:
    data = await _body_fields(request, "tasks")
    if not isinstance(data, dict):
        raise BadRequest('body: expected a tasks object, {"tasks": [...]}')
    try:
        return created_tasks_of(data)
    except ValidationError as error:
        raise BadRequest(describe_invalid_fields(error)) from None


async def _task_patch(request: Request) -> TaskPatch:
    data = await _body_fields(request, "task")
    if not isinstance(data, dict):
        raise BadRequest("body: expected a Task object")
    if "nexts" in data:
        raise BadRequest("nexts: links change only through the /next and /previous operations")
    try:
        return TaskPatch.model_validate(data)
    except ValidationError as error:
        raise BadRequest(describe_invalid_fields(error)) from None


@router.post(
    "/task",
    summary="Create Task that not exist",
    responses=answers(200, "Success", TaskList, 400, 404, 409, 412, 413, 415, 422, 504),
    openapi_extra={**body_of("TaskList"), "parameters": [IDEMPOTENCY_KEY_PARAMETER]},
)
async def create_tasks(request: Request) -> Response:
    """All or nothing: nested `nexts` are created too and linked after their parent; an existing id is 400. With
    an `Idempotency-Key`, stored at most once: the same key and tasks again answer what the first answered."""
    key = idempotency_key(request)
    tasks = await _created_tasks(request)
    refused = refused_create(request)
    if refused is not None:
        return refused
    answers = await _store(request).create_tasks_rendered(tasks, task_to_api, key)
    return await _respond_tasks(answers, _format(request))


@router.get(
    "/task/{taskId}",
    summary="Get Task from id",
    responses={**answers(200, "Task found", Task, 400, 404, 412), **NOT_MODIFIED},
)
async def get_task(request: Request, taskId: TaskIdPath) -> Response:
    return await read_task(request, _store(request), taskId, _format(request))


async def read_task(request: Request, store: GraphStore, task_id: int, fmt: Format) -> Response:
    """The answer to reading one task, routed or on the fast path (rest.fast_read): the task with the ETag of its
    representation in `fmt`, or the 304 or 412 the request's conditions call for."""
    conditions = preconditions(request)
    doc = await store.get_task(task_id)
    linked = await _linked(store, [doc])
    etag = etag_of(doc, fmt.value, linked)
    refused = refused_read(request, conditions, etag, f"task {task_id}")
    return refused or tagged(task_response(doc, linked, fmt), etag)


@router.get(
    "/{jobId}/task/roots",
    summary="Return the tasks of the job (including roots or not)",
    responses={**answers(200, "Tasks readed", TaskList, 400, 412), **NOT_MODIFIED},
)
async def get_job_tasks(
    request: Request,
    jobId: Annotated[str, AfterValidator(path_value), Path(description="Job id")],
    root: Annotated[bool | None, BeforeValidator(_true_or_false), Query(description="including roots or not")] = None,
) -> Response:
    store, conditions = _store(request), preconditions(request)
    # The legacy API's rule: root absent or true lists every task of the job, roots included; false only non-roots.
    only_non_roots = False if root is False else None
    response = await _tasks_response(store, await store.list_job_tasks(jobId, only_non_roots), _format(request))
    return conditional_list(request, conditions, response, f"the task list of job {jobId!r}")


@router.put(
    "/task/{taskId}",
    summary="Update existing task",
    responses=answers(200, "Task successfully updated", Task, 400, 404, 412, 413, 415, 504),
    openapi_extra=body_of("TaskUpdate"),
)
async def update_task(request: Request, taskId: TaskIdPath) -> Response:
    """Fields present replace stored values, `null` clears, absent fields stay; `nexts` is refused."""
    patch = await _task_patch(request)
    store = _store(request)
    fmt = _format(request)
    doc = await store.update_task(taskId, patch, preconditions(request))
    linked = await _answer_of_change(_linked(store, [doc]), f"task {taskId}")
    return tagged(task_response(doc, linked, fmt), etag_of(doc, fmt.value, linked))


@router.delete(
    "/task/{taskId}",
    summary="Delete existing task",
    status_code=204,
    responses=answers(204, "Task successfully deleted", None, 400, 404, 412, 504),
)
async def delete_task(request: Request, taskId: TaskIdPath) -> Response:
    await _store(request).delete_task(taskId, preconditions(request))
    return Response(status_code=204)


@dataclass(frozen=True)
class _Links:
    """The /next or /previous operations: the same three, mirrored."""

    segment: str  # next, previous
    links: str  # the stored field: nexts, previous
    parameter: str  # nextTaskId, prevTaskId
    noun: str  # how the legacy summaries call them

    @property
    def path(self) -> str:
        return f"/task/{{taskId}}/{self.segment}"

    def listing(self) -> dict[str, Any]:
        """The GET route's name, summary and answers, as the legacy API documents them."""
        plural = "nexts" if self.segment == "next" else "previous"
        return {
            "name": f"get_{self.links}",
            "summary": f"Get {plural} Tasks from taskId",
            "responses": {**answers(200, f"{self.noun} task found", TaskList, 400, 404, 412), **NOT_MODIFIED},
        }

    def adding(self) -> dict[str, Any]:
        return {
            "name": f"add_{self.links}",
            "summary": f"Add {self.segment} tasks to taskId",
            "responses": answers(200, f"{self.noun} tasks successfully added", TaskList, 400, 404, 412, 504),
        }

    def removing(self) -> dict[str, Any]:
        return {
            "name": f"remove_{self.links}",
            "summary": f"Delete {self.segment} tasks in taskId",
            "status_code": 204,
            "responses": answers(204, f"{self.noun} tasks successfully deleted", None, 400, 404, 412, 504),
        }


NEXT = _Links("next", "nexts", "nextTaskId", "Next")
PREVIOUS = _Links("previous", "previous", "prevTaskId", "Previous")
NextIds = Annotated[list[str] | None, Query(alias=NEXT.parameter, description="Next taskId")]
PreviousIds = Annotated[list[str] | None, Query(alias=PREVIOUS.parameter, description="Previous taskId")]


async def _linked_list(
    request: Request, task_id: int, links: _Links, conditions: Preconditions | None, docs: list[TaskDoc]
) -> Response:
    """The linked tasks' list, or 304/412 as the request's `conditions` say (parsed before the read: a malformed
    one is refused first)."""
    response = await _tasks_response(_store(request), docs, _format(request))
    return conditional_list(request, conditions, response, f"the {links.segment} task list of task {task_id}")


@router.get(NEXT.path, **NEXT.listing())
async def get_nexts(
    request: Request, taskId: TaskIdPath, status: StatusQuery = None, type: TypeQuery = None
) -> Response:
    conditions = preconditions(request)
    return await _linked_list(request, taskId, NEXT, conditions, await _store(request).list_nexts(taskId, status, type))


@router.put(NEXT.path, **NEXT.adding())
async def add_nexts(request: Request, taskId: TaskIdPath, ids: NextIds = None) -> Response:
    store = _store(request)
    docs = await store.add_nexts(taskId, _task_ids(request, NEXT.parameter, ids), preconditions(request))
    return await _answer_of_change(_tasks_response(store, docs, _format(request)), f"the next tasks of task {taskId}")


@router.delete(NEXT.path, **NEXT.removing())
async def remove_nexts(request: Request, taskId: TaskIdPath, ids: NextIds = None) -> Response:
    await _store(request).remove_nexts(taskId, _task_ids(request, NEXT.parameter, ids), preconditions(request))
    return Response(status_code=204)


@router.get(PREVIOUS.path, **PREVIOUS.listing())
async def get_previous(
    request: Request, taskId: TaskIdPath, status: StatusQuery = None, type: TypeQuery = None
) -> Response:
    conditions = preconditions(request)
    docs = await _store(request).list_previous(taskId, status, type)
    return await _linked_list(request, taskId, PREVIOUS, conditions, docs)


@router.put(PREVIOUS.path, **PREVIOUS.adding())
async def add_previous(request: Request, taskId: TaskIdPath, ids: PreviousIds = None) -> Response:
    store = _store(request)
    docs = await store.add_previous(taskId, _task_ids(request, PREVIOUS.parameter, ids), preconditions(request))
    subject = f"the previous tasks of task {taskId}"
    return await _answer_of_change(_tasks_response(store, docs, _format(request)), subject)


@router.delete(PREVIOUS.path, **PREVIOUS.removing())
async def remove_previous(request: Request, taskId: TaskIdPath, ids: PreviousIds = None) -> Response:
    await _store(request).remove_previous(taskId, _task_ids(request, PREVIOUS.parameter, ids), preconditions(request))
    return Response(status_code=204)
