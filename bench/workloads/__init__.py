"""One module per workload, each with `async def measure(run: Run) -> list[Row]`; WORKLOADS names them as
`python -m bench NAME ...` takes them, in the order `make bench` runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.measure import Row, Run
from bench.workloads import (
    bigjob,
    create,
    events,
    fleet,
    get,
    graph_view,
    graphql_bounded,
    graphql_job,
    history,
    jobs,
    links,
    roots,
    tracing,
    ui,
    walk,
)

WORKLOADS: dict[str, Callable[[Run], Awaitable[list[Row]]]] = {
    "get": get.measure,
    "roots": roots.measure,
    "create": create.measure,
    "links": links.measure,
    "graphql": graphql_job.measure,
    "graphql_bounded": graphql_bounded.measure,
    "tracing": tracing.measure,
    "walk": walk.measure,
    "jobs": jobs.measure,
    "bigjob": bigjob.measure,
    "events": events.measure,
    "fleet": fleet.measure,
    "history": history.measure,
    "ui": ui.measure,
    "graph_view": graph_view.measure,
}
ALONE: dict[str, Callable[[Run], Awaitable[list[Row]]]] = {"links-cpu": links.measure_cpu}
"""Rows a workload above also measures, by a name of their own to measure them alone (not run by `make bench`)."""
OWN_DATA = frozenset({"graphql_bounded"})
"""Workloads that seed what they measure: `python -m bench` naming only these does not load the million tasks."""
