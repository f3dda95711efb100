"""A tiny OpenID Connect issuer for the tests: serves a discovery document and a JWKS over HTTP on a loopback port,
signs JWTs with its keys, counts what it was asked, and can be down (nothing listens on its port)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from gateway.embedded import free_port

AUDIENCE = "tracking-gateway"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class SigningKey:
    kid: str
    private: PrivateKey
    algorithm: str

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def ed_key(kid: str) -> SigningKey:
    return SigningKey(kid, ed25519.Ed25519PrivateKey.generate(), "EdDSA")


@dataclass
class Issuer:
    """The issuer at http://127.0.0.1:<port>; `keys` are what its JWKS lists (change them to rotate)."""

    keys: list[SigningKey]
    port: int = field(default_factory=free_port)
    requests: list[str] = field(default_factory=list)
    """The path of every request it answered, in order."""
    jwks_status: int = 200
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def jwks_fetches(self) -> int:
        return self.requests.count("/jwks")

    def document(self, path: str) -> tuple[int, object]:
        if path == "/.well-known/openid-configuration":
            return 200, {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/jwks",
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
            }
        if path == "/jwks":
            return self.jwks_status, {"keys": [key.public_jwk() for key in self.keys]}
        return 404, {}

    def start(self) -> None:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                status, body = issuer.document(self.path)
                encoded = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = self._thread = None

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A valid token's claims for AUDIENCE, full access, an hour long; `overrides` replace or add claims
        (None removes one)."""
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + 3600,
            "scope": "openid tracking:read tracking:write",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: SigningKey | None = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A JWT of `claims` (over the defaults) signed by `key` (the issuer's first)."""
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims), key.private, algorithm=key.algorithm, headers={"kid": key.kid, **(headers or {})}
        )


@contextmanager
def running_issuer(*keys: SigningKey) -> Iterator[Issuer]:
    issuer = Issuer(list(keys) or [rsa_key("key-1")])
    issuer.start()
    try:
        yield issuer
    finally:
        issuer.stop()
