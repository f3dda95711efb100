"""The HTTP transport the OTLP exporter posts its batches with: the SDK's own urllib3 transport wherever it sends
what the exporter's default transport (requests) would send, else that default.

The exporter's client (opentelemetry-exporter-otlp's `_OTLPHTTPClient`: endpoint, headers from
OTEL_EXPORTER_OTLP_HEADERS, compression, timeout, retries with backoff, the immediate retry of a stale pooled
connection) is kept as it is: only the transport under it changes. Measured, a POST through requests cost about
twice and a half the export thread's CPU of the same POST through urllib3 (bench/README.md, "The cost of
tracing"): requests merges its session's settings, looks up proxies and a netrc file in the environment and
prepares a request object for every POST. Those lookups are what requests adds that urllib3 lacks, so the
urllib3 transport is used only when none of them would change the request, checked once at start-up with
requests' own functions: no proxy for the endpoint (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), no CA bundle from the
environment (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), no netrc entry for the collector's host, no credential
provider (OpenTelemetry's variables naming a requests session). A user and password in the endpoint's URL
are sent as basic authentication, as requests sends them. TLS: the CA file and client certificate and key the
exporter resolved (OTEL_EXPORTER_OTLP_CERTIFICATE, ..._CLIENT_CERTIFICATE, ..._CLIENT_KEY)."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import requests.utils
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.sdk.environment_variables import (
    _OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER,
    _OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER,
)
from urllib3.util import make_headers

REQUESTS_ONLY_VARIABLES = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    _OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER,
    _OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER,
)
"""Variables that change what requests sends (its CA bundle, a session of the operator's): with any of them set,
the exporter keeps requests."""


class BasicAuthUrllib3Transport(Urllib3HTTPTransport):
    """The SDK's urllib3 transport, sending the endpoint's user and password as basic authentication (urllib3
    ignores them in a URL; requests sends them so) to the endpoint without them."""

    def __init__(self, *, verify: bool | str, cert: str | tuple[str, str] | None, endpoint: str) -> None:
        super().__init__(verify=verify, cert=cert)
        self._endpoint = endpoint
        self._authorization: str | None = None
        self._bare_endpoint = endpoint
        user, password = url_credentials(endpoint)
        if user or password:
            self._authorization = make_headers(basic_auth=f"{user}:{password}")["authorization"]
            parts = urlsplit(endpoint)
            self._bare_endpoint = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        if self._authorization is not None and url == self._endpoint:
            url = self._bare_endpoint
            headers = {**(headers or {}), "authorization": self._authorization}
        return super().request(method, url, headers=headers, timeout=timeout, data=data)


def leaner_transport(transport: BaseHTTPTransport, endpoint: str) -> BaseHTTPTransport | None:
    """A urllib3 transport sending what `transport` (the exporter's requests transport, as the SDK configured
    it) would send to `endpoint`, or None where requests would send something else (see the module's doc)."""
    if type(transport) is not RequestsHTTPTransport or any(os.environ.get(name) for name in REQUESTS_ONLY_VARIABLES):
        return None
    session = transport._session
    if type(session) is not requests.Session or session.auth is not None or session.proxies:
        return None
    if requests.utils.get_environ_proxies(endpoint):
        return None
    if not any(url_credentials(endpoint)) and requests.utils.get_netrc_auth(endpoint) is not None:
        return None
    return BasicAuthUrllib3Transport(verify=session.verify, cert=session.cert, endpoint=endpoint)


def url_credentials(url: str) -> tuple[str, str]:
    """The user and password a URL carries (percent-decoded; empty when absent), as requests reads them: either
    one not empty makes basic authentication."""
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.password or "")
