"""A real OpenID provider for the sign-in tests: oidc-provider-mock (Flask and Authlib), served from a thread on a
loopback port, made into what "Sign in" needs of a provider, as every provider that serves single-page
applications is:

- public clients: the token endpoint takes a client without a secret (`none`), for codes and refresh tokens;
- PKCE required, S256 only (RFC 7636): Authlib's CodeChallenge, with the challenge kept per code (the mock's
  codes do not keep it);
- an ID token in the answer to a refresh (OpenID Connect Core section 12.2 allows it; Keycloak and Auth0 do it), so
  that pages sending ID tokens can renew them;
- CORS on the token endpoint for loopback origins (the gateways the tests serve), which the pages call from the
  browser.

Every request it answered is recorded, so that a test can check what the pages sent."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs

import oidc_provider_mock
import werkzeug.serving
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from oidc_provider_mock import _app as provider_app

from gateway.embedded import free_port

_challenges: dict[str, tuple[str, str]] = {}
"""The code challenge and its method of every authorization code issued, by code."""


class _S256Required(CodeChallenge):  # type: ignore[misc]
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("a public client must send a code_challenge with code_challenge_method=S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: Any) -> str | None:
        return _challenges.get(authorization_code.code, (None, None))[0]

    def get_authorization_code_challenge_method(self, authorization_code: Any) -> str | None:
        return _challenges.get(authorization_code.code, (None, None))[1]


class _PublicCodeGrant(provider_app.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = ["none"]

    def __init__(self, request: Any, server: Any) -> None:
        super().__init__(request, server)
        _S256Required(required=True)(self)

    def save_authorization_code(self, code: str, request: Any) -> None:
        super().save_authorization_code(code, request)
        data = request.payload.data
        _challenges[code] = (data.get("code_challenge"), data.get("code_challenge_method"))


class _PublicRefreshGrant(provider_app.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = ["none"]
    token_max_age = timedelta(hours=1)

    def __init__(self, request: Any, server: Any) -> None:
        super().__init__(request, server)
        id_tokens = provider_app.OpenIDCode(require_nonce=False, token_max_age=self.token_max_age)
        self.register_hook("after_create_token_response", id_tokens.process_token)


@dataclass
class Provider:
    url: str
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    """(method, path, parameters of the query or the form) of every request answered."""

    def asked(self, path: str) -> list[dict[str, list[str]]]:
        return [params for _, asked_path, params in self.requests if asked_path == path]


def _recording_cors(app: Any, provider: Provider) -> Callable[..., Iterable[bytes]]:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        origin = environ.get("HTTP_ORIGIN", "")
        params = parse_qs(environ.get("QUERY_STRING", "")) | parse_qs(body.decode(errors="replace"))
        provider.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], params))

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            if environ["PATH_INFO"] == "/oauth2/token" and origin.startswith("http://127.0.0.1:"):
                headers = [*headers, ("Access-Control-Allow-Origin", origin)]
            return start_response(status, headers, *rest)

        return app(environ, start)

    return wrapped


@contextmanager
def running_provider(
    users: list[oidc_provider_mock.User], token_max_age: timedelta = timedelta(hours=1), refresh: bool = True
) -> Iterator[Provider]:
    """The provider at http://127.0.0.1:<port>, knowing `users` (their claims go into their ID tokens), requiring
    a nonce; its tokens expire after `token_max_age`; with `refresh`, it issues refresh tokens."""
    saved = provider_app.AuthorizationCodeGrant, provider_app.RefreshTokenGrant
    provider_app.AuthorizationCodeGrant, provider_app.RefreshTokenGrant = _PublicCodeGrant, _PublicRefreshGrant
    _PublicRefreshGrant.token_max_age = token_max_age
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}")
    try:
        app = oidc_provider_mock.app(
            require_nonce=True, user_claims=users, access_token_max_age=token_max_age, issue_refresh_token=refresh
        )
        server = werkzeug.serving.make_server("127.0.0.1", port, _recording_cors(app, provider), threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield provider
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    finally:
        provider_app.AuthorizationCodeGrant, provider_app.RefreshTokenGrant = saved
