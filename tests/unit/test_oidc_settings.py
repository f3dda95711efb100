"""The TRACKING_OIDC_* settings that cannot mean anything safe are refused at start, each naming its variable."""

from __future__ import annotations

import os

import pytest

from gateway.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _no_tracking_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TRACKING_"):
            monkeypatch.delenv(name)


def refused(monkeypatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    return str(raised.value)


@pytest.mark.parametrize(
    ("issuer", "why"),
    [
        ("http://login.example.com", "https"),  # keys over plain http could be anyone's
        ("ftp://login.example.com", "https"),
        ("https://", "https"),
        ("https://login.example.com/a;b", "semicolon"),  # could not be named in the pages' policy
        ("https://login.example.com/a b", "space"),
    ],
)
def test_an_issuer_that_is_not_https_is_refused(monkeypatch, issuer, why):
    message = refused(monkeypatch, TRACKING_OIDC_ISSUER=issuer, TRACKING_OIDC_AUDIENCE="api")
    assert "TRACKING_OIDC_ISSUER" in message and why in message


@pytest.mark.parametrize("issuer", ["http://localhost:9400", "http://127.0.0.1:9400/realms/x", "http://[::1]:1"])
def test_plain_http_is_accepted_on_loopback(monkeypatch, issuer):
    monkeypatch.setenv("TRACKING_OIDC_ISSUER", issuer)
    monkeypatch.setenv("TRACKING_OIDC_AUDIENCE", "api")
    config = load_settings().oidc
    assert config is not None and config.issuer == issuer


@pytest.mark.parametrize("algorithms", ["HS256", "RS256,none", "RS256, HS512", "none", ","])
def test_only_asymmetric_algorithms_may_be_allowed(monkeypatch, algorithms):
    message = refused(
        monkeypatch,
        TRACKING_OIDC_ISSUER="https://login.example.com",
        TRACKING_OIDC_AUDIENCE="api",
        TRACKING_OIDC_ALGORITHMS=algorithms,
    )
    assert "TRACKING_OIDC_ALGORITHMS" in message and "asymmetric" in message


def test_issuer_and_audience_go_together_and_a_client_id_needs_them(monkeypatch):
    assert "TRACKING_OIDC_AUDIENCE" in refused(monkeypatch, TRACKING_OIDC_ISSUER="https://login.example.com")
    monkeypatch.delenv("TRACKING_OIDC_ISSUER")
    assert "TRACKING_OIDC_ISSUER" in refused(monkeypatch, TRACKING_OIDC_AUDIENCE="api")
    monkeypatch.delenv("TRACKING_OIDC_AUDIENCE")
    assert "TRACKING_OIDC_CLIENT_ID" in refused(monkeypatch, TRACKING_OIDC_CLIENT_ID="pages")


def test_without_an_issuer_no_bearer_token_is_verified(monkeypatch):
    monkeypatch.setenv("TRACKING_OIDC_ISSUER", " ")
    assert load_settings().oidc is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRACKING_OIDC_LEEWAY_S", "301"),
        ("TRACKING_OIDC_KEYS_MIN_INTERVAL_S", "0"),
        ("TRACKING_OIDC_KEYS_MAX_AGE_S", "59"),
        ("TRACKING_OIDC_HTTP_TIMEOUT_MS", "99"),
        ("TRACKING_OIDC_PAGE_TOKEN", "refresh_token"),
    ],
)
def test_out_of_range_values_are_refused(monkeypatch, variable, value):
    message = refused(
        monkeypatch, TRACKING_OIDC_ISSUER="https://login.example.com", TRACKING_OIDC_AUDIENCE="api", **{variable: value}
    )
    assert variable in message
