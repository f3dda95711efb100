// The credential of every page the gateway serves (the live view /ui, GraphiQL /graphql, Swagger UI /docs): one
// per browser tab, in sessionStorage, so a credential given on one page is known on the others and is gone when
// the tab closes. It is either an API token (X-Auth-Token) or, after "Sign in" (/static/sign-in.js), the bearer
// token the identity provider issued, sent as `Authorization: Bearer`. A link may carry an API token in its
// fragment, `#token=…` (a fragment never reaches the server): it is kept and taken out of the address bar at once,
// so it is neither bookmarked nor shared by accident.
"use strict";

globalThis.trackingToken = (() => {
  const KEY = "tracking-token";
  const BEARER_KEY = "tracking-bearer";

  /** Keeps the fragment's token, if any, and leaves the rest of the fragment (say, `job=J`) as it was. */
  function takeFromLink() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (!params.has("token")) return;
    const token = params.get("token").trim();
    if (token) {
      sessionStorage.setItem(KEY, token);
      sessionStorage.removeItem(BEARER_KEY);
    }
    params.delete("token");
    const rest = params.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  /** The signed-in bearer token `{ token, expiresAt, refreshToken }` (expiresAt in ms), or null. */
  function signedIn() {
    try {
      const held = JSON.parse(sessionStorage.getItem(BEARER_KEY));
      return held && typeof held.token === "string" ? held : null;
    } catch {
      return null;
    }
  }

  /** The bearer token while it is valid, or null: one past its expiry is not sent (the page asks again). */
  function bearer() {
    const held = signedIn();
    return held && (!held.expiresAt || held.expiresAt > Date.now()) ? held.token : null;
  }

  takeFromLink();
  return {
    KEY,
    BEARER_KEY,
    takeFromLink,
    signedIn,
    bearer,
    /** The API token (X-Auth-Token), or null. */
    get: () => sessionStorage.getItem(KEY),
    /** Keeps an API token, in place of any bearer token. */
    set: (token) => {
      sessionStorage.setItem(KEY, token.trim());
      sessionStorage.removeItem(BEARER_KEY);
    },
    /** Keeps a signed-in bearer token, in place of any API token. */
    setBearer: (held) => {
      sessionStorage.setItem(BEARER_KEY, JSON.stringify(held));
      sessionStorage.removeItem(KEY);
    },
    /** Whether the tab holds a credential to send. */
    held: () => Boolean(bearer() || sessionStorage.getItem(KEY)),
    /** The request header fields that carry the credential (none without one). */
    headers: () => {
      const token = bearer();
      if (token) return { Authorization: `Bearer ${token}` };
      const apiToken = sessionStorage.getItem(KEY);
      return apiToken ? { "X-Auth-Token": apiToken } : {};
    },
    forget: () => {
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(BEARER_KEY);
    },
  };
})();
