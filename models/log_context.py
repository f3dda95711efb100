"""Which request a log line is written for, in a context variable a front end sets (the gateway's request-id
middleware) and the log handler reads. The store runs some work in a fresh context, so that it inherits no
caller's deadline or actor (a coalesced read, a transaction's commit in the background); `fresh_context` keeps
this one variable: the lines that work writes are still for the request it serves."""

from __future__ import annotations

import contextvars

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
"""The id of the request this task serves, for every log line it writes; `-` outside any request."""


def fresh_context() -> contextvars.Context:
    """A context holding none of the current one's variables but its request id."""
    fresh = contextvars.Context()
    fresh.run(REQUEST_ID.set, REQUEST_ID.get())
    return fresh
