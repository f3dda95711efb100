""" "Sign in" on the pages (TRACKING_OIDC_CLIENT_ID): what the pages' script (static/sign-in.js) needs to run the
authorization code flow with PKCE against the issuer, and the page the issuer sends the browser back to. The pages
are a public client: the gateway holds no client secret and never sees the code or the tokens on their way."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from gateway.settings import Settings
from web.oidc import IssuerUnavailable, OidcVerifier
from web.page_security import SIGN_IN, page_response, signing_in
from web.state import gateway_state

CONFIG_PATH = "/auth/config"
CALLBACK_PATH = "/auth/callback"
"""The redirect URI to register with the identity provider (the gateway's origin, then this path)."""
SIGN_IN_PAGE = (Path(__file__).parent / "sign-in.html").read_text()


def sign_in_config(settings: Settings, verifier: OidcVerifier) -> dict[str, str] | None:
    """What static/sign-in.js reads; None until the issuer's discovery document has been read."""
    metadata = verifier.keys.metadata
    if metadata is None or metadata.authorization_endpoint is None or metadata.token_endpoint is None:
        return None
    assert settings.oidc_client_id is not None and settings.oidc_issuer is not None
    return {
        "issuer": settings.oidc_issuer,
        "clientId": settings.oidc_client_id,
        "authorizationEndpoint": metadata.authorization_endpoint,
        "tokenEndpoint": metadata.token_endpoint,
        "scope": settings.oidc_client_scopes,
        "token": settings.oidc_page_token,
        "redirectPath": CALLBACK_PATH,
    }


def install_sign_in(app: FastAPI, settings: Settings) -> None:
    """/auth/config (JSON) and /auth/callback (a page): 404 without TRACKING_OIDC_CLIENT_ID; /auth/config is 503
    with Retry-After while the issuer has not been reached."""

    @app.get(CONFIG_PATH, include_in_schema=False)
    async def config(request: Request) -> JSONResponse:
        verifier = gateway_state(request)["oidc"]
        if verifier is None or settings.oidc_client_id is None:
            return JSONResponse({"message": "sign-in is not configured (TRACKING_OIDC_CLIENT_ID)"}, status_code=404)
        if verifier.keys.metadata is None:
            try:
                await verifier.keys.refresh()
            except IssuerUnavailable as error:
                headers = {"Retry-After": str(error.retry_after_s)}
                return JSONResponse({"message": error.message}, status_code=503, headers=headers)
        answer = sign_in_config(settings, verifier)
        if answer is None:
            message = "the issuer's discovery document names no authorization_endpoint or token_endpoint"
            return JSONResponse({"message": message}, status_code=503)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @app.get(CALLBACK_PATH, include_in_schema=False)
    async def callback(request: Request) -> HTMLResponse:
        verifier = gateway_state(request)["oidc"]
        if verifier is None or settings.oidc_client_id is None:
            return HTMLResponse("sign-in is not configured (TRACKING_OIDC_CLIENT_ID)", status_code=404)
        return page_response(SIGN_IN_PAGE, signing_in(SIGN_IN, verifier.page_token_endpoint))
