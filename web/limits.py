"""Bounds on a request's shape, which both front ends enforce before any work: ids per request, the nesting of
`nexts` in a create, the depth of a JSON or XML document, the attributes of an XML element. Each refusal names
what is wrong and its setting. The store's own bound (tasks per create) is `models.limits.Limits`, which these
extend: a request is refused by the same rule the store keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models import InvalidOperation, Limits, parse_task_id

MAX_IDS_PER_REQUEST = 1_000
"""Most ids one request may name (TRACKING_MAX_IDS_PER_REQUEST)."""
MAX_NESTING = 32
"""Deepest nesting of `nexts` in one create (TRACKING_MAX_NESTING)."""
MAX_XML_ATTRIBUTES = 64
"""Most attributes on one element of an XML body (TRACKING_XML_MAX_ATTRIBUTES)."""


@dataclass(frozen=True)
class RequestLimits(Limits):
    max_ids_per_request: int = MAX_IDS_PER_REQUEST
    max_nesting: int = MAX_NESTING
    max_xml_attributes: int = MAX_XML_ATTRIBUTES

    @property
    def max_document_depth(self) -> int:
        """Deepest nesting of objects, arrays or XML elements a request may hold: what `max_nesting` levels of
        nested `nexts` need in the most verbose encoding (four per level), and a margin for the envelope."""
        return 4 * self.max_nesting + 8

    def depth_error(self, where: str) -> InvalidOperation:
        return InvalidOperation(
            f"{where}: nested deeper than {self.max_document_depth} levels "
            f"(allows {self.max_nesting} levels of nested nexts, TRACKING_MAX_NESTING)"
        )

    def refuse_oversized_creation(self, tasks: Any, where: str = "tasks") -> None:
        """Count the tasks (nested ones included) and `nexts` levels of a create, as JSON-shaped data and
        before any validation, so a million tasks are refused in milliseconds rather than validated first."""
        if not isinstance(tasks, list):
            return  # the shape is refused by validation, with the field named
        if not tasks:
            raise InvalidOperation(f"{where}: at least one task is required")
        count = 0
        pending: list[tuple[list[Any], int]] = [(tasks, 0)]  # the `nexts` around each list: none around the top
        while pending:
            level_tasks, level = pending.pop()
            count += len(level_tasks)
            self.refuse_task_count(count, where)
            for task in level_tasks:
                nexts = task.get("nexts") if isinstance(task, dict) else None
                children = nexts.get("tasks") if isinstance(nexts, dict) else None
                if isinstance(children, list) and children:
                    if level >= self.max_nesting:
                        raise InvalidOperation(
                            f"{where}: nexts nested more than {self.max_nesting} levels deep (TRACKING_MAX_NESTING)"
                        )
                    pending.append((children, level + 1))

    def task_ids(self, values: list[Any] | None, where: str) -> list[int]:
        """Ids of a repeated parameter or list argument: at least one, each a task id, not too many."""
        if not values:
            raise InvalidOperation(f"{where}: at least one task id is required")
        self.refuse_long_list(values, where)
        return [parse_task_id(value, where) for value in values]

    def refuse_oversized_document(self, data: Any, where: str) -> None:
        """Refuse JSON-shaped data (a request body, GraphQL variables) nested deeper than any request needs, or
        holding a list longer than any argument takes or an object of more members than that, before anything
        walks it recursively, coerces it item by item or validates it member by member."""
        longest = max(self.max_tasks_per_create, self.max_ids_per_request)
        pending: list[tuple[Any, int]] = [(data, 0)]
        while pending:
            item, depth = pending.pop()
            if isinstance(item, dict):
                if len(item) > longest:
                    raise InvalidOperation(
                        f"{where}: an object of {len(item)} members, more than any request holds "
                        "(TRACKING_MAX_TASKS_PER_CREATE, TRACKING_MAX_IDS_PER_REQUEST)"
                    )
                children: Any = item.values()
            elif isinstance(item, list):
                if len(item) > longest:
                    raise InvalidOperation(
                        f"{where}: a list of {len(item)} items, longer than any argument takes "
                        "(TRACKING_MAX_TASKS_PER_CREATE, TRACKING_MAX_IDS_PER_REQUEST)"
                    )
                children = item
            else:
                continue
            if depth >= self.max_document_depth:
                raise self.depth_error(where)
            pending.extend((child, depth + 1) for child in children)

    def refuse_long_list(self, values: Any, where: str) -> None:
        if len(values) > self.max_ids_per_request:
            raise InvalidOperation(
                f"{where}: {len(values)} values, more than the limit of {self.max_ids_per_request} "
                "(TRACKING_MAX_IDS_PER_REQUEST)"
            )
