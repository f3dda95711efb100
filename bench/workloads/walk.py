"""A dashboard walking 1,000 tasks downstream: one GraphQL query against the REST calls a client would make."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from bench.data import WALK_TASKS
from bench.measure import REPORT, Row, Run, median_of, timed


async def walk_query(session: aiohttp.ClientSession, gateway: str, root: int) -> object:
    """The dashboard's one GraphQL query: the 1,000-task tree below `root`; its answer."""
    query = f'{{ task(id: "{root}") {{ id status descendants {{ id status nexts {{ id }} }} }} }}'
    async with session.post(f"{gateway}/graphql", json={"query": query}) as response:
        body = orjson.loads(await response.read())
    assert len(body["data"]["task"]["descendants"]) == WALK_TASKS - 1, body.get("errors")
    return body


async def walk_row(session: aiohttp.ClientSession, gateway: str, ids: dict[str, int]) -> Row:
    root = ids["walk_root"]

    async def one_query() -> object:
        return await walk_query(session, gateway, root)

    async def rest_walk() -> object:
        seen, level = {root}, [root]
        while level:

            async def nexts(task_id: int) -> list[int]:
                async with session.get(f"{gateway}/tracking/task/{task_id}/next") as response:
                    return [t["id"] for t in orjson.loads(await response.read())["tasks"]]

            found = await asyncio.gather(*(nexts(task_id) for task_id in level))
            level = [i for ids_ in found for i in ids_ if i not in seen]
            seen.update(level)
        assert len(seen) == WALK_TASKS
        return seen

    graphql_s = await median_of(lambda: timed(one_query))
    rest_s = await median_of(lambda: timed(rest_walk), rounds=3)
    speedup = rest_s / graphql_s
    return Row(
        "Dashboard walk of 1k tasks: GraphQL vs REST (time)",
        graphql_s * 1000,
        rest_s * 1000,
        "ms",
        speedup,
        REPORT,
        "ratio = REST time / GraphQL time; GraphQL walks in one $graphLookup",
    )


async def measure(run: Run) -> list[Row]:
    return [await walk_row(run.session, run.gateway, run.ids)]
