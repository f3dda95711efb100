"""Large GraphQL answers are encoded in a worker thread: orjson holds the interpreter about 30 ms per 100,000
objects of answer, and in one go on the event loop every other request (/healthz too) would wait that long. In
the thread the loop gets its turns (the interpreter switches threads every 5 ms). Which answers are large is
known before encoding: the operation's estimated cost (graphql_schema.cost) counts its objects. Once a large
answer is sent, the memory it took is handed back (`release_after_large_answer`)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from web.memory import release_free_memory

LARGE_ANSWER_COST = 20_000
"""Answers estimated at more objects than this are encoded in a worker thread."""


class EncodedAnswer(dict[str, Any]):
    """An answer (still readable as the dict it is) with its JSON text, encoded already."""

    def __init__(self, answer: dict[str, Any], text: str) -> None:
        super().__init__(answer)
        self.text = text


def is_large(extensions: dict[str, Any] | None) -> bool:
    """Whether an answer is estimated large (its `extensions.cost`, set by graphql_schema.cost)."""
    cost = (extensions or {}).get("cost")
    return isinstance(cost, dict) and isinstance(cost.get("estimated"), int) and cost["estimated"] > LARGE_ANSWER_COST


def _encode(answer: dict[str, Any]) -> str:
    return orjson.dumps(answer).decode()


async def encoded_off_the_loop(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with its JSON text encoded in a worker thread; as it is when orjson cannot encode it (an
    integer past 64 bits: the standard library does, on the loop, as for any answer)."""
    try:
        return EncodedAnswer(answer, await run_in_threadpool(_encode, answer))
    except TypeError:
        return answer


def release_after_large_answer() -> None:
    """Once a large answer is sent (a background task of its response, in a worker thread): the memory its
    objects took, freed by now, handed back to the operating system (web.memory). No garbage collection first:
    what a request leaves in reference cycles is small once its context has forgotten its reads
    (graphql_schema.context.ForgetReads), and a full collection holds the interpreter for as long as it walks
    every object the process holds."""
    release_free_memory()
