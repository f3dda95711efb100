"""gateway.otlp_transport: spans are posted through the SDK's urllib3 transport with what the SDK's requests
transport would send (the exporter's headers, OTEL_EXPORTER_OTLP_HEADERS, a URL's user and password as basic
authentication, the TLS files), and through requests wherever requests would send something else (a proxy, a
CA bundle or netrc entry from the environment, a credential provider)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
from opentelemetry.exporter.otlp.proto.http import trace_exporter
from opentelemetry.sdk.environment_variables import _OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER

from gateway.otlp_transport import BasicAuthUrllib3Transport, url_credentials
from gateway.settings import load_settings
from gateway.tracing import DirectOTLPExporter, start_tracing
from tests.gateway.tracing_setup import QUICK_EXPORT
from tests.otlp import Receiver

_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC")


@pytest.fixture(autouse=True)
def no_requests_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """None of the variables requests reads, whatever the machine has (and no ~/.netrc: HOME is empty)."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


async def _export_one(receiver: Receiver, tmp_path: Path, endpoint: str | None = None) -> None:
    settings = load_settings(
        data_dir=tmp_path, otel_exporter_otlp_endpoint=endpoint or receiver.endpoint, **QUICK_EXPORT
    )
    tracing = start_tracing(settings)
    assert tracing is not None
    tracing.provider.get_tracer("probe").start_span("probe").end()
    await receiver.wait_for("probe")
    await tracing.shutdown()


def _transport(endpoint: str) -> object:
    return DirectOTLPExporter(endpoint=endpoint, timeout=1.0)._client._transport


async def test_spans_go_through_urllib3_with_the_exporters_headers(receiver, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k3y,x-tenant=eu")
    assert type(_transport(f"{receiver.endpoint}/v1/traces")) is BasicAuthUrllib3Transport
    await _export_one(receiver, tmp_path)
    (headers,) = receiver.headers
    assert headers["x-api-key"] == "k3y" and headers["x-tenant"] == "eu"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["user-agent"].startswith("OTel-OTLP-Exporter-Python/")
    assert "authorization" not in headers
    assert receiver.paths == {"/v1/traces"}


@pytest.mark.hostile
async def test_a_percent_encoded_user_and_password_are_sent_decoded_as_requests_sends_them(receiver, tmp_path):
    endpoint = receiver.endpoint.replace("http://", "http://us%40er:p%3Aw@")
    await _export_one(receiver, tmp_path, endpoint)
    (headers,) = receiver.headers
    assert headers["authorization"] == "Basic " + base64.b64encode(b"us@er:p:w").decode()
    assert receiver.paths == {"/v1/traces"}, "the credentials are not in the request line"


def test_url_credentials_are_read_as_requests_reads_them():
    assert url_credentials("http://a%20b:c@collector:4318") == ("a b", "c")
    assert url_credentials("http://collector:4318") == ("", "")
    assert url_credentials("http://:@collector:4318") == ("", ""), "empty ones: no basic authentication"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HTTP_PROXY", "http://proxy.invalid:3128"),
        ("ALL_PROXY", "http://proxy.invalid:3128"),
        ("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
        ("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
        (_OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER, "some_provider"),
    ],
)
def test_what_changes_a_request_of_requests_keeps_requests(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    if variable == _OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER:
        # The SDK loads the provider's session at the exporter's creation: a provider of a plain session.
        monkeypatch.setattr(trace_exporter, "_load_session_from_envvar", lambda _: requests.Session())
    assert type(_transport("http://collector.example:4318/v1/traces")) is RequestsHTTPTransport


def test_a_proxy_the_endpoint_bypasses_does_not_keep_requests(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "collector.example")
    assert type(_transport("http://collector.example:4318/v1/traces")) is BasicAuthUrllib3Transport


def test_a_netrc_entry_for_the_collector_keeps_requests_unless_the_url_has_credentials(monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine collector.example login ops password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert type(_transport("http://collector.example:4318/v1/traces")) is RequestsHTTPTransport
    assert type(_transport("http://u:p@collector.example:4318/v1/traces")) is BasicAuthUrllib3Transport
    assert type(_transport("http://other.example:4318/v1/traces")) is BasicAuthUrllib3Transport


async def test_through_a_proxy_spans_still_reach_the_collector(receiver, tmp_path, monkeypatch):
    """requests, kept for the proxy, sends the export to it (the receiver stands in for the proxy here: it is
    asked for the collector's absolute URL)."""
    monkeypatch.setenv("HTTP_PROXY", receiver.endpoint)
    await _export_one(receiver, tmp_path, "http://collector.invalid:4318")
    assert receiver.paths == {"http://collector.invalid:4318/v1/traces"}


def test_the_tls_files_the_exporter_resolved_are_the_pools(monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(tmp_path / "client.pem"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(tmp_path / "client.key"))
    transport = _transport("https://collector.example:4318/v1/traces")
    assert type(transport) is BasicAuthUrllib3Transport
    pool = transport._pool.connection_pool_kw
    assert pool["ca_certs"] == str(tmp_path / "ca.pem") and pool["cert_reqs"] == "CERT_REQUIRED"
    assert (pool["cert_file"], pool["key_file"]) == (str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
