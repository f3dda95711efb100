// "Sign in" with the identity provider the gateway is configured with (TRACKING_OIDC_CLIENT_ID): the OAuth 2.0
// authorization code flow with PKCE (RFC 7636, S256) as a public client, which holds no secret. The page leaves for
// the provider's authorization endpoint with a fresh state, nonce and code challenge; the provider sends the
// browser back to /auth/callback (sign-in-callback.js), which checks the state, trades the code and its verifier
// for tokens at the token endpoint, checks the ID token's nonce, and keeps the token in this tab (token.js).
// Nothing here runs inline: the pages' policy allows the gateway's own script files only, and connections to the
// provider's token endpoint only.
"use strict";

globalThis.trackingSignIn = (() => {
  const PENDING_KEY = "tracking-sign-in"; // the state, nonce and verifier of the sign-in under way in this tab
  const RENEW_BEFORE_MS = 30_000; // a token this close to its expiry is renewed before it is sent
  let config; // the gateway's /auth/config: a promise of it, or of null when sign-in is not offered

  function base64url(bytes) {
    return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
  }

  const randomText = () => base64url(crypto.getRandomValues(new Uint8Array(32)));

  /** What sign-in needs from the gateway; null when it is not configured or the provider is not reachable. */
  function settings() {
    config ??= fetch("/auth/config", { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : null), () => null);
    return config;
  }

  /** Leaves for the provider's sign-in; the browser comes back to `returnTo` (a path of this gateway). */
  async function start(returnTo = location.pathname + location.hash) {
    const known = await settings();
    if (!known) throw new Error("sign-in is not available now");
    const pending = { state: randomText(), nonce: randomText(), verifier: randomText(), returnTo };
    const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pending.verifier)));
    sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
    const url = new URL(known.authorizationEndpoint);
    const params = {
      response_type: "code",
      client_id: known.clientId,
      redirect_uri: location.origin + known.redirectPath,
      scope: known.scope,
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: challenge,
      code_challenge_method: "S256",
    };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    location.assign(url.href);
  }

  /** The claims of a JWT, unverified: the gateway verifies every token it is sent; the page only reads them. */
  function claimsOf(jwt) {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  }

  /** The token the gateway is to be sent, from a token endpoint's answer, with when it expires (ms). */
  function kept(known, answer, refreshToken) {
    const token = answer[known.token];
    if (typeof token !== "string") throw new Error(`the provider's answer holds no ${known.token}`);
    let expiresAt = Date.now() + (Number(answer.expires_in) || 300) * 1000;
    if (token.split(".").length === 3) {
      const exp = Number(claimsOf(token).exp);
      if (exp) expiresAt = exp * 1000;
    }
    return { token, expiresAt, refreshToken: answer.refresh_token || refreshToken || null };
  }

  async function tokenRequest(known, fields) {
    const response = await fetch(known.tokenEndpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ client_id: known.clientId, ...fields }),
      credentials: "omit",
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`the provider refused: ${answer.error_description || answer.error || response.status}`);
    return answer;
  }

  /** On /auth/callback: checks the answer and the state, trades the code, checks the nonce, keeps the token;
   *  returns the path to go back to. Throws with what went wrong (nothing is kept then). */
  async function finish(query = new URLSearchParams(location.search)) {
    const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
    sessionStorage.removeItem(PENDING_KEY); // one use: a replayed callback finds nothing
    if (query.get("error")) throw new Error(`the provider answered ${query.get("error")}: ${query.get("error_description") || ""}`);
    if (!pending || !query.get("state") || query.get("state") !== pending.state) {
      throw new Error("this sign-in was not started from this tab (its state does not match): sign in again");
    }
    const known = await settings();
    if (!known) throw new Error("sign-in is not available now");
    const answer = await tokenRequest(known, {
      grant_type: "authorization_code",
      code: query.get("code") || "",
      redirect_uri: location.origin + known.redirectPath,
      code_verifier: pending.verifier,
    });
    if (typeof answer.id_token !== "string") throw new Error("the provider's answer holds no ID token");
    const idClaims = claimsOf(answer.id_token);
    if (idClaims.nonce !== pending.nonce) throw new Error("the ID token's nonce is not this sign-in's: sign in again");
    if (idClaims.iss !== known.issuer) throw new Error("the ID token is not from the configured issuer");
    const audiences = [].concat(idClaims.aud);
    if (!audiences.includes(known.clientId)) throw new Error("the ID token is not for this client");
    trackingToken.setBearer(kept(known, answer));
    return sameOriginPath(pending.returnTo);
  }

  /** `path` when it is a path of this gateway, else the live view: never a way to another site. */
  function sameOriginPath(path) {
    try {
      const url = new URL(path, location.origin);
      return url.origin === location.origin ? url.pathname + url.search + url.hash : "/ui/";
    } catch {
      return "/ui/";
    }
  }

  /** Renews a signed-in token about to expire with its refresh token, when the provider gave one. Returns
   *  whether a credential can be sent; false means: sign in again (the bearer token is then forgotten). */
  async function fresh() {
    const held = trackingToken.signedIn();
    if (!held) return trackingToken.held();
    if (held.expiresAt - Date.now() > RENEW_BEFORE_MS) return true;
    const known = await settings();
    if (held.refreshToken && known) {
      try {
        const answer = await tokenRequest(known, { grant_type: "refresh_token", refresh_token: held.refreshToken });
        trackingToken.setBearer(kept(known, answer, held.refreshToken));
        return true;
      } catch {
        // renewal refused or impossible (no new token of the kind the gateway takes): not tried again, and the
        // page asks to sign in again once the token has expired
        trackingToken.setBearer({ ...held, refreshToken: null });
      }
    }
    if (held.expiresAt > Date.now()) return true;
    trackingToken.forget();
    return false;
  }

  return { settings, start, finish, fresh, claimsOf };
})();
