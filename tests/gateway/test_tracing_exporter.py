"""The trace exporter: nothing set up without OpenTelemetry's variables, configured by them (refused, naming the
variable, when out of bounds), a collector that is gone, slow or refusing costing dropped spans and never time,
and a served gateway flushing its spans at exit or exiting promptly without its collector."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import secrets
import sys
import threading
import time
from functools import partial

import httpx
import pytest
from opentelemetry import trace

from gateway import collector_answers
from gateway.app import create_app
from gateway.backend import Backend
from gateway.embedded import free_port
from gateway.observability import log_handler
from gateway.settings import SettingsError, load_settings
from gateway.tracing import SHUTDOWN_WAIT_S, service_resource, start_tracing
from tests.conftest import TEST_DB
from tests.gateway.tracing_setup import (
    assert_one_tree,
    mongodb_spans,
    new_trace,
    traced_gateway,
    traceparent,
)
from tests.helpers import AUTH, TOKEN, LoggedProcess, eventually, gateway_ready, lifespan_client


def _batch_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("OtelBatch"))


async def test_without_an_endpoint_nothing_is_set_up_or_exported(
    store, tmp_path, monkeypatch, receiver, no_earlier_secrets
):
    """OpenTelemetry's other variables alone turn nothing on; OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none
    turn off even a configured endpoint."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "not-exported")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    threads = _batch_threads()
    for off in ({}, {"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        for name, value in {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **off}.items():
            if off:
                monkeypatch.setenv(name, value)
        settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path)
        assert start_tracing(settings) is None
        app = create_app(settings, Backend(store=store))
        streams = io.StringIO()
        logger = logging.getLogger("tracing-test.untraced")  # the gateway's handler alone, whatever else is set
        logger.propagate, logger.disabled = False, False
        logger.handlers[:] = [log_handler("json", streams)]
        async with lifespan_client(app, AUTH) as http:
            assert (await http.post("/tracking/task", json={"tasks": [{"name": "x"}]})).status_code == 200
            graphql = await http.post("/graphql", json={"query": "{ tasks { id } }"})
            assert graphql.status_code == 200
            logger.warning("beside the requests")
        assert json.loads(streams.getvalue().splitlines()[-1])["trace_id"] == "-"
        assert _batch_threads() == threads, "no span processor was started"
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), "no provider installed globally"
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    await asyncio.sleep(0.3)  # six export periods of a gateway that would trace
    assert receiver.requests == 0


async def test_the_standard_variables_configure_the_exporter(store, mongo_uri, tmp_path, monkeypatch, receiver):
    """The app reads OTEL_* from the environment, opens its own backend on the traced provider, and exports
    OTLP over HTTP/protobuf to OTEL_EXPORTER_OTLP_ENDPOINT's /v1/traces."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint + "/")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tracking-eu-1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    monkeypatch.setenv("TRACKING_MONGODB_URI", mongo_uri)
    monkeypatch.setenv("TRACKING_MONGODB_DB", TEST_DB)
    settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path)
    async with lifespan_client(create_app(settings), AUTH) as http:
        sampled, caller = new_trace()
        assert (await http.get("/tracking/task/7", headers=traceparent(sampled, caller))).status_code == 404
        spans = await receiver.trace_of(sampled, "GET /tracking/task/{taskId}")
        assert {span.service for span in spans} == {"tracking-eu-1"}
        assert mongodb_spans(spans), "the app's own backend traces its commands"
        unsampled = f"00-{secrets.token_hex(16)}-{caller}-00"
        assert (await http.get("/tracking/task/8", headers={"traceparent": unsampled})).status_code == 404
        assert (await http.get("/tracking/task/9")).status_code == 404  # a root: parentbased_always_off
    await asyncio.sleep(0.3)
    assert {span.trace_id for span in receiver.spans} == {sampled}, "only the sampled caller's trace"
    assert receiver.paths == {"/v1/traces"} and receiver.content_types == {"application/x-protobuf"}


@pytest.mark.hostile
async def test_a_collector_password_in_the_endpoint_is_used_and_never_logged(tmp_path, receiver, caplog):
    """A URL's user and password are the exporter's basic authentication: spans still go there, and the log
    line saying where traces go shows the collector without them."""
    endpoint = receiver.endpoint.replace("http://", "http://collector:s3cr3t-pw@")
    settings = load_settings(data_dir=tmp_path, otel_exporter_otlp_endpoint=endpoint, otel_bsp_schedule_delay=50)
    with caplog.at_level(logging.INFO, logger="gateway.tracing"):
        tracing = start_tracing(settings)
        assert tracing is not None
        tracing.provider.get_tracer("probe").start_span("probe").end()
        await receiver.wait_for("probe")
        await tracing.shutdown()
    assert f"traces go to {receiver.endpoint}/v1/traces" in caplog.text
    assert "s3cr3t-pw" not in caplog.text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "grpc://collector:4317"),
        # Not URLs one can send to: each was a traceback at start, or accepted and every export failed.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:99999"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a b/"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base?x=1#f"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1"),
        ("OTEL_PROPAGATORS", "tracecontext,b3"),
        ("OTEL_PROPAGATORS", "tracecontext,"),
    ],
)
def test_a_bad_variable_is_refused_naming_it(monkeypatch, tmp_path, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(api_tokens=TOKEN, data_dir=tmp_path)


def test_an_empty_variable_is_unset_and_enumerations_are_read_in_any_case(monkeypatch, tmp_path):
    """OpenTelemetry's rules for its variables: empty means unset, enumerated values in any case."""
    for variable in (
        "OTEL_TRACES_SAMPLER",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.setenv(variable, "")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/Protobuf")
    settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path)
    assert settings.otel_traces_sampler == "parentbased_always_on" and settings.otel_bsp_max_queue_size == 2048
    assert settings.otel_exporter_otlp_endpoint is None and settings.otel_service_name is None
    assert settings.otel_exporter_otlp_traces_protocol == "http/protobuf"
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "ALWAYS_OFF")
    assert load_settings(api_tokens=TOKEN, data_dir=tmp_path).otel_traces_sampler == "always_off"


@pytest.mark.parametrize("propagators", ["tracecontext", " tracecontext , baggage", "none", "b3,None"])
def test_installed_propagators_or_none_are_accepted(monkeypatch, tmp_path, propagators):
    """As OpenTelemetry's API reads OTEL_PROPAGATORS: names trimmed, `none` anywhere meaning no propagator."""
    monkeypatch.setenv("OTEL_PROPAGATORS", propagators)
    assert load_settings(api_tokens=TOKEN, data_dir=tmp_path).otel_propagators == propagators


def test_an_endpoint_s_scheme_is_read_in_either_case(tmp_path):
    settings = load_settings(data_dir=tmp_path, otel_exporter_otlp_endpoint="HTTPS://collector:4318/base")
    assert settings.otel_exporter_otlp_endpoint == "HTTPS://collector:4318/base"


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({}, "tracking-gateway"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=eu-gw-7,deployment.environment=prod"}, "eu-gw-7"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=eu-gw-7", "OTEL_SERVICE_NAME": "eu-gw-8"}, "eu-gw-8"),
    ],
)
def test_service_name_comes_from_otel_service_name_then_the_resource_attributes(
    monkeypatch, tmp_path, environment, named
):
    for variable in ("OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    resource = service_resource(load_settings(data_dir=tmp_path))
    assert resource.attributes["service.name"] == named
    assert resource.attributes["service.version"]


def test_an_export_batch_larger_than_the_queue_is_refused_naming_both(tmp_path):
    with pytest.raises(SettingsError, match=r"OTEL_BSP_MAX_EXPORT_BATCH_SIZE.*OTEL_BSP_MAX_QUEUE_SIZE"):
        load_settings(data_dir=tmp_path, otel_bsp_max_queue_size=10, otel_bsp_max_export_batch_size=11)


def dropped(metrics_text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("tracking_trace_spans_dropped_total{")
    )


async def _answers_promptly(http: httpx.AsyncClient, count: int) -> None:
    for _ in range(count):
        started = time.monotonic()
        assert (await http.get("/tracking/task/1")).status_code == 404
        assert time.monotonic() - started < 2.0, "a request waited for the collector"


@pytest.mark.parametrize("trouble", ["gone", "slow", "refusing"])
async def test_a_collector_in_trouble_costs_dropped_spans_never_time(store, mongo_uri, data_dir, receiver, trouble):
    endpoint = f"http://127.0.0.1:{free_port()}" if trouble == "gone" else receiver.endpoint
    receiver.delay_s = 3.0 if trouble == "slow" else 0.0
    receiver.status = 503 if trouble == "refusing" else 200
    small = {"otel_bsp_max_queue_size": 4, "otel_bsp_max_export_batch_size": 2, "otel_exporter_otlp_timeout": 500}
    async with traced_gateway(mongo_uri, data_dir, endpoint, **small) as (app, _, tracing, _):
        async with lifespan_client(app, AUTH) as http:
            before = dropped((await http.get("/metrics")).text)
            await _answers_promptly(http, 30)

            async def counted() -> bool:
                return dropped((await http.get("/metrics")).text) > before

            await eventually(counted, what="dropped spans counted on /metrics")
        started = time.monotonic()
        await tracing.shutdown()
        assert time.monotonic() - started < SHUTDOWN_WAIT_S + 2, "stopping waited for the collector"


async def test_a_collector_answering_with_a_huge_body_is_read_no_further_than_its_bound(
    store, mongo_uri, data_dir, receiver, caplog
):
    """Whatever answers at the endpoint with far more than an OTLP answer (here 256 MiB after it) costs the export
    thread no more than MAX_COLLECTOR_ANSWER_BYTES of reading: the connection is closed past it, the export counts
    as its status says, and the next batch goes out on a new connection."""
    receiver.answer_bytes = 256 * 1024 * 1024
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint) as (app, _, _, _),
        lifespan_client(app, AUTH) as http,
    ):
        before = (await http.get("/metrics")).text
        for answers in (1, 2, 3):
            assert (await http.get("/tracking/task/1")).status_code == 404

            async def cut(answers: int = answers) -> bool:
                with receiver.lock:
                    return len(receiver.answer_bytes_sent) >= answers

            await eventually(cut, what=f"answer {answers} cut short")
        metrics = (await http.get("/metrics")).text
    # What the sockets' buffers take before the exporter stops reading comes on top of the bound.
    assert all(sent < 32 * 1024 * 1024 for sent in receiver.answer_bytes_sent), receiver.answer_bytes_sent
    # The process's counters: what this gateway's exports added to them.
    assert _exported(metrics) > _exported(before) and dropped(metrics) == dropped(before)
    warned = [record for record in caplog.records if "answer is longer than" in record.getMessage()]
    assert len(warned) == 1, "the warning is written once a minute, not once an export"


async def test_a_collector_trickling_its_answer_costs_the_export_no_more_than_its_timeout(
    store, mongo_uri, data_dir, receiver, caplog
):
    """A collector (or a proxy) answering 200 with a long body it sends a byte at a time, each byte well within
    a read's timeout: the export is cut at OTEL_EXPORTER_OTLP_TIMEOUT, counted as failed, logged, its
    connection dropped, and the next batch is posted."""
    receiver.answer_bytes, receiver.trickle_s = 100_000, 0.2
    quick = {"otel_exporter_otlp_timeout": 1000, "otel_bsp_max_queue_size": 4, "otel_bsp_max_export_batch_size": 2}
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint, **quick) as (app, _, _, _),
        lifespan_client(app, AUTH) as http,
    ):
        before = (await http.get("/metrics")).text
        assert (await http.get("/tracking/task/1")).status_code == 404

        async def failed_then_posted_again() -> bool:
            assert (await http.get("/tracking/task/1")).status_code == 404
            metrics = (await http.get("/metrics")).text
            with receiver.lock:
                posted, cut = receiver.requests, len(receiver.answer_bytes_sent)
            return _export_failed(metrics) > _export_failed(before) and posted >= 2 and cut >= 1

        await eventually(failed_then_posted_again, what="an export cut at its timeout and the next one posted")
    assert "Failed to export spans batch" in caplog.text


async def test_a_collector_asking_to_retry_after_a_while_gets_no_post_until_then(
    store, mongo_uri, data_dir, receiver, monkeypatch
):
    """A 429 with Retry-After: batches until then are dropped without a POST, counted as export_failed; a wait
    longer than MAX_RETRY_AFTER_S is cut to it (a collector asking for a day must not silence tracing a day)."""
    monkeypatch.setattr(collector_answers, "MAX_RETRY_AFTER_S", 3.0)
    receiver.status, receiver.retry_after = 429, "86400"
    small = {"otel_bsp_max_queue_size": 4, "otel_bsp_max_export_batch_size": 2, "otel_exporter_otlp_timeout": 500}
    async with (
        traced_gateway(mongo_uri, data_dir, receiver.endpoint, **small) as (app, _, _, _),
        lifespan_client(app, AUTH) as http,
    ):
        before = _export_failed((await http.get("/metrics")).text)

        async def batches_failed(count: int) -> bool:
            assert (await http.get("/tracking/task/1")).status_code == 404
            return _export_failed((await http.get("/metrics")).text) >= before + 2 * count

        await eventually(partial(batches_failed, 3), what="three batches dropped")
        with receiver.lock:
            assert receiver.requests == 1, "batches were posted before the collector's Retry-After passed"
        receiver.status = 200

        async def posted_again() -> bool:
            assert (await http.get("/tracking/task/1")).status_code == 404
            return bool(receiver.named("GET /tracking/task/{taskId}"))

        await eventually(posted_again, what="batches posted once the longest wait honoured passed")


def _export_failed(metrics_text: str) -> float:
    prefix = 'tracking_trace_spans_dropped_total{reason="export_failed"} '
    return float(next(line for line in metrics_text.splitlines() if line.startswith(prefix)).split()[1])


def _exported(metrics_text: str) -> float:
    line = next(line for line in metrics_text.splitlines() if line.startswith("tracking_trace_spans_exported_total "))
    return float(line.split()[1])


@pytest.mark.slow
async def test_the_served_gateway_traces_from_its_variables_and_flushes_at_exit(mongo_uri, tmp_path, receiver):
    """`tracking-gateway serve` as operators run it: the variables alone turn traces on for the server, the
    store it opens (its commands), and the background work; SIGTERM sends what is queued and exits promptly."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "OTEL_"))},
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(tmp_path / "var"),
        "TRACKING_PORT": str(port),
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": "traced_process",
        "TRACKING_LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "served-gateway",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing leaves before exit: the shutdown must send it
    }
    command = [sys.executable, "-m", "gateway"]
    process = LoggedProcess(command, env)
    trace_id, caller = new_trace()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            await eventually(partial(gateway_ready, port, process), timeout=90, what="the gateway")
            body = {"tasks": [{"id": 3}]}
            created = await http.post("/tracking/task", json=body, headers=traceparent(trace_id, caller))
            assert created.status_code == 200
    finally:
        process.terminate()
        started = time.monotonic()
        stderr = process.output()
    assert process.returncode == 0, stderr
    assert time.monotonic() - started < 15, "the exit waited"
    spans = receiver.of_trace(trace_id)
    server = assert_one_tree(spans, caller)
    assert server.name == "POST /tracking/task" and server.service == "served-gateway"
    assert any(span.name == "insert tasks" for span in mongodb_spans(spans))
    assert receiver.named("task history batch"), "the history writer of the served gateway traces its batches"
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["trace_id"] == trace_id for line in logged if line["name"] == "uvicorn.access")
    assert any("traces go to" in line["message"] for line in logged)


@pytest.mark.slow
async def test_a_served_gateway_whose_collector_is_gone_still_exits_promptly(mongo_uri, tmp_path):
    """Each export to a collector that is gone retries for OTEL_EXPORTER_OTLP_TIMEOUT (here 30 s): SIGTERM must
    not wait for it, nor the interpreter's exit for the thread that does."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "OTEL_"))},
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(tmp_path / "var"),
        "TRACKING_PORT": str(port),
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": "traced_collector_gone",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "30000",
        "OTEL_BSP_SCHEDULE_DELAY": "10",
    }
    process = LoggedProcess([sys.executable, "-m", "gateway"], env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            await eventually(partial(gateway_ready, port, process), timeout=90, what="the gateway")
            for task_id in range(1, 21):
                started = time.monotonic()
                assert (await http.get(f"/tracking/task/{task_id}")).status_code == 404
                assert time.monotonic() - started < 2.0, "a request waited for the collector"
    finally:
        process.terminate()
        stopping = time.monotonic()
        stderr = process.output()
    assert process.returncode == 0, stderr
    assert time.monotonic() - stopping < SHUTDOWN_WAIT_S + 8, "the exit waited for the collector"
