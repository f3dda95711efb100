"""Settings and options that cannot mean anything are refused before anything runs: numbers that are not finite
or out of range, tokens a client could never send as written. Settings: one line naming the variable, exit 2;
options: click's error naming the option, exit 2, nothing done."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from gateway.settings import DAY_MS, MAX_COUNT, MAX_SPAN_QUEUE, SettingsError, load_settings
from tests.conftest import TEST_DB
from tests.helpers import task
from web.auth import TokenRegistry

GATEWAY = [sys.executable, "-m", "gateway"]


@pytest.fixture(autouse=True)
def _no_tracking_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("TRACKING_", "OTEL_")):
            monkeypatch.delenv(name)


def refused(monkeypatch, variable: str, value: str) -> str:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert variable in message, message
    assert "\n" not in message
    return message


NOT_FINITE = ["inf", "-inf", "nan", "NaN", "Infinity", "1e400"]


@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("variable", ["TRACKING_RETENTION_DAYS", "TRACKING_RETENTION_INTERVAL_S"])
def test_float_settings_must_be_finite(monkeypatch, variable, value):
    refused(monkeypatch, variable, value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRACKING_RETENTION_DAYS", "-0"),
        ("TRACKING_RETENTION_DAYS", "0.0"),
        ("TRACKING_RETENTION_DAYS", "36501"),
        ("TRACKING_RETENTION_DAYS", "1e300"),
        ("TRACKING_RETENTION_INTERVAL_S", "1e-300"),
        ("TRACKING_RETENTION_INTERVAL_S", "0.5"),
        ("TRACKING_RETENTION_INTERVAL_S", "1e300"),
        ("TRACKING_HISTORY_DAYS", "24856"),  # MongoDB's TTL index takes no more
        ("TRACKING_HISTORY_DAYS", "-0"),
        ("TRACKING_MONGODB_TIMEOUT_MS", str(10**20)),
        ("TRACKING_HEADER_TIMEOUT_MS", "86400001"),
        ("TRACKING_BODY_TIMEOUT_MS", "inf"),
        ("TRACKING_SUBSCRIPTION_RESUME_MS", "nan"),
        ("TRACKING_GRAPHQL_MAX_TRAVERSAL", str(2**63)),  # a MongoDB $limit past int64 fails every request
        ("TRACKING_GRAPHQL_MAX_PAGE", str(MAX_COUNT + 1)),
        ("TRACKING_MAX_BODY_BYTES", "1" + "0" * 40),
        ("TRACKING_PURGE_BATCH", "100001"),
        ("TRACKING_PORT", "-0"),
        ("TRACKING_PORT", "nan"),
        # OpenTelemetry's numbers, under their own names: finite, at least 1, and bounded.
        ("OTEL_BSP_SCHEDULE_DELAY", "86400001"),
        ("OTEL_BSP_SCHEDULE_DELAY", "inf"),
        ("OTEL_BSP_EXPORT_TIMEOUT", str(10**20)),
        ("OTEL_BSP_EXPORT_TIMEOUT", "-0"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "nan"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "86400001"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", str(MAX_SPAN_QUEUE + 1)),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "1e3"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", str(2**63)),
        ("OTEL_TRACES_SAMPLER_ARG", "nan"),
        ("OTEL_TRACES_SAMPLER_ARG", "1e400"),
        ("OTEL_TRACES_SAMPLER_ARG", "-0.1"),
    ],
)
def test_numbers_out_of_range_are_refused(monkeypatch, variable, value):
    refused(monkeypatch, variable, value)


def test_numbers_at_their_edges_are_accepted(monkeypatch):
    monkeypatch.setenv("TRACKING_RETENTION_DAYS", "36500")
    monkeypatch.setenv("TRACKING_RETENTION_INTERVAL_S", "1")
    monkeypatch.setenv("TRACKING_HISTORY_DAYS", "24855")
    monkeypatch.setenv("TRACKING_MONGODB_TIMEOUT_MS", "86400000")
    monkeypatch.setenv("TRACKING_GRAPHQL_MAX_TRAVERSAL", str(MAX_COUNT))
    monkeypatch.setenv("TRACKING_EMBEDDED_RESTARTS", "-0")  # zero, written oddly: no restarts
    settings = load_settings()
    assert (settings.retention_days, settings.retention_interval_s, settings.history_days) == (36500, 1, 24855)
    assert (settings.mongodb_timeout_ms, settings.graphql_max_traversal) == (86_400_000, MAX_COUNT)
    assert settings.embedded_restarts == 0


def test_opentelemetry_numbers_at_their_edges_are_accepted(monkeypatch):
    for variable in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        monkeypatch.setenv(variable, str(DAY_MS))
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", str(MAX_SPAN_QUEUE))
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", str(MAX_SPAN_QUEUE))
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    settings = load_settings()
    assert (settings.otel_bsp_schedule_delay, settings.otel_exporter_otlp_timeout) == (DAY_MS, DAY_MS)
    assert settings.otel_bsp_max_export_batch_size == settings.otel_bsp_max_queue_size == MAX_SPAN_QUEUE
    assert settings.otel_traces_sampler_arg == 0


@pytest.mark.parametrize(
    ("tokens", "number", "character"),
    [
        ("good,tök", 2, "U+00F6"),  # a UTF-8 client sends two bytes that never match
        ("in side", 1, "U+0020"),  # a space inside (those around a token are trimmed, as before)
        ("tab\there", 1, "U+0009"),
        ("bell\x07", 1, "U+0007"),
        ("del\x7f", 1, "U+007F"),
        ("first1,\u00a0nbsp", 2, "U+00A0"),
        ("emoji\U0001f600", 1, "U+1F600"),
    ],
)
@pytest.mark.parametrize("variable", ["TRACKING_API_TOKENS", "TRACKING_READ_TOKENS"])
def test_tokens_must_be_visible_ascii(monkeypatch, variable, tokens, number, character):
    message = refused(monkeypatch, variable, tokens)
    assert f"token {number}: character" in message and character in message, message
    assert "VCHAR" in message
    for token in tokens.split(","):
        assert token.strip() not in message  # a token is a secret: the error names its position only


def test_every_visible_ascii_token_is_accepted_and_matched(monkeypatch):
    every = "".join(map(chr, range(0x21, 0x7F))).replace(",", "")  # a comma separates tokens
    monkeypatch.setenv("TRACKING_API_TOKENS", f" {every} ,plain")
    settings = load_settings()
    assert settings.api_tokens == (every, "plain")
    assert TokenRegistry(settings.api_tokens).accepts(every)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("TRACKING_")}
    return subprocess.run(
        [*GATEWAY, *args], env={**base, **env}, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRACKING_RETENTION_DAYS", "inf"),
        ("TRACKING_API_TOKENS", "caf\u00e9"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "1e9"),
        # Read by OpenTelemetry's API as the app is imported: a name it cannot find was its traceback.
        ("OTEL_PROPAGATORS", "tracecontext,b3"),
    ],
)
def test_the_gateway_refuses_to_start_with_one_line(tmp_path, variable, value):
    result = run("serve", TRACKING_DATA_DIR=str(tmp_path), **{variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr
    assert not (tmp_path / "mongo").exists()  # refused before the embedded mongod was started


@pytest.mark.slow
@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--inactive-days", "nan", "'nan' is not a finite number"),
        ("--inactive-days", "inf", "not in the range"),
        ("--inactive-days", "-inf", "not in the range"),
        ("--inactive-days", "1e400", "not in the range"),
        ("--inactive-days", "36501", "not in the range"),
        ("--inactive-days", "-1", "not in the range"),
        ("--batch", str(2**64), "not in the range"),
        ("--batch", "0", "not in the range"),
    ],
)
async def test_purge_refuses_options_that_mean_nothing(store, raw_db, mongo_uri, option, value, says):
    await store.create_tasks([task(id=1, job_id="j")])
    # Old enough that any purge that ran would remove it.
    await raw_db.tasks.update_many({}, {"$set": {"update-timestamp": datetime(2000, 1, 1, tzinfo=UTC)}})
    before = [doc async for doc in raw_db.tasks.find({})]
    args = ["purge", "--inactive-days", "0", option, value] if option != "--inactive-days" else ["purge", option, value]
    result = run(*args, TRACKING_MONGODB_URI=mongo_uri, TRACKING_MONGODB_DB=TEST_DB)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and option in error[0] and says in error[0], result.stderr
    assert [doc async for doc in raw_db.tasks.find({})] == before
