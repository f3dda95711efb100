// The API token of every page the gateway serves (the live view /ui, GraphiQL /graphql, Swagger UI /docs): one
// per browser tab, under one sessionStorage key, so a token given on one page is known on the others and is gone
// when the tab closes. A link may carry it in its fragment, `#token=…` (a fragment never reaches the server):
// it is kept and taken out of the address bar at once, so it is neither bookmarked nor shared by accident.
"use strict";

globalThis.trackingToken = (() => {
  const KEY = "tracking-token";

  /** Keeps the fragment's token, if any, and leaves the rest of the fragment (say, `job=J`) as it was. */
  function takeFromLink() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (!params.has("token")) return;
    const token = params.get("token").trim();
    if (token) sessionStorage.setItem(KEY, token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  takeFromLink();
  return {
    KEY,
    takeFromLink,
    get: () => sessionStorage.getItem(KEY),
    set: (token) => sessionStorage.setItem(KEY, token.trim()),
    forget: () => sessionStorage.removeItem(KEY),
  };
})();
