"""The bound the graph store keeps whoever calls it (a front end, the CLI, a test): tasks per create. The bounds
on a request's shape (ids per request, nesting, document depth, XML attributes) are HTTP's: web.limits extends
this class with them."""

from __future__ import annotations

from dataclasses import dataclass

from models.defaults import MAX_TASKS_PER_CREATE
from models.errors import InvalidOperation


@dataclass(frozen=True)
class Limits:
    max_tasks_per_create: int = MAX_TASKS_PER_CREATE

    def refuse_task_count(self, count: int, where: str = "tasks") -> None:
        if count > self.max_tasks_per_create:
            raise InvalidOperation(
                f"{where}: more than {self.max_tasks_per_create} tasks in one create, nested ones included "
                "(TRACKING_MAX_TASKS_PER_CREATE)"
            )
