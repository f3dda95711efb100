"""What the tracing tests share: a gateway app tracing to a receiver, a served gateway whose log lines are
captured, W3C trace context headers, and checks of the spans received."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import free_port
from gateway.observability import log_handler
from gateway.server import server_config
from gateway.settings import Settings, load_settings
from gateway.tracing import start_tracing
from models import GraphStore
from tests.conftest import TEST_DB
from tests.helpers import TOKEN
from tests.otlp import ReceivedSpan

SECRET_NAME = "payroll-run-7f3a"
"""Task data the tests write: it must show in no span."""
QUICK_EXPORT = {"otel_bsp_schedule_delay": 50}


def new_trace() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def traceparent(trace_id: str, span_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{span_id}-01"}


@asynccontextmanager
async def traced_gateway(mongo_uri: str, data_dir: Path, endpoint: str, **overrides: Any) -> AsyncIterator[Any]:
    """A gateway app tracing to `endpoint`, on its own store of the test database opened with the app's tracer
    provider (as the CLI opens them); yields (app, settings, tracing, store)."""
    settings = load_settings(
        api_tokens=TOKEN, data_dir=data_dir, otel_exporter_otlp_endpoint=endpoint, **{**QUICK_EXPORT, **overrides}
    )
    tracing = start_tracing(settings)
    assert tracing is not None
    traced_store = await GraphStore.open(mongo_uri, TEST_DB, tracer_provider=tracing.provider)
    try:
        yield create_app(settings, Backend(store=traced_store), tracing), settings, tracing, traced_store
    finally:
        await traced_store.close()
        await tracing.shutdown()


def assert_one_tree(spans: list[ReceivedSpan], caller_span: str) -> ReceivedSpan:
    """Every span's parent is in the trace, but the root's, which is the caller's span; returns the root."""
    ids = {span.span_id for span in spans}
    assert len(ids) == len(spans), "span ids repeat"
    roots = [span for span in spans if span.parent_id not in ids]
    assert len(roots) == 1, [(span.name, span.parent_id) for span in roots]
    assert roots[0].parent_id == caller_span
    return roots[0]


def mongodb_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if span.attributes.get("db.system.name") == "mongodb"]


def assert_no_task_data(spans: list[ReceivedSpan], *secrets_: str) -> None:
    for span in spans:
        shown = json.dumps([span.name, span.attributes])
        for secret in (SECRET_NAME, TOKEN, *secrets_):
            assert secret not in shown, (span.name, span.attributes)


def children_of(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_id == parent.span_id]


@asynccontextmanager
async def served_with_logs(
    app: Any, settings: Settings, logged: tuple[str, ...] = ("uvicorn.access", "gateway")
) -> AsyncIterator[tuple[int, dict[str, io.StringIO]]]:
    """`app` behind the gateway's uvicorn configuration, its access log on, every line of the `logged` loggers
    written through the gateway's handlers (text and JSON) into the streams yielded."""
    streams = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = [log_handler(log_format, stream) for log_format, stream in streams.items()]
    loggers = [logging.getLogger(name) for name in logged]
    config = server_config(app, settings)
    config.port = free_port()
    server = uvicorn.Server(config)
    # Whatever earlier tests left on these loggers (a level, disabled by a logging config): on for this one.
    saved = [(logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.disabled = False
        for handler in handlers:
            logger.addHandler(handler)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        yield config.port, streams
    finally:
        server.should_exit = True
        try:
            await serving
        finally:
            for logger, (level, disabled) in zip(loggers, saved, strict=True):
                logger.setLevel(level)
                logger.disabled = disabled
                for handler in handlers:
                    logger.removeHandler(handler)
