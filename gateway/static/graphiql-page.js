// GraphiQL (graphql_schema/graphiql.html) on the credential every page shares (token.js): asks for a token, or
// offers "Sign in" (sign-in.js) when the gateway has an identity provider, when the tab has none, and again when
// the gateway refuses it or a signed-in token expires and cannot be renewed. A file of its own, not inline: the
// page's policy runs no inline script.
"use strict";

const EXAMPLE = `# Jobs, newest activity first: run with ▶ or Ctrl-Enter.
# Your token goes with every request; a header set in
# the Headers tab below replaces it (to try another).
{
  jobs(first: 10) {
    edges {
      node {
        id
        taskCount
        statusCounts { status count }
        summary { progress lastUpdate }
      }
    }
  }
}`;
const form = document.getElementById("token-form");
const container = document.getElementById("graphiql");
let root = null;

/** fetch with the tab's credential (a signed-in token renewed first when it is about to expire), unless the
 *  Headers tab sets one: that is the person's own try, and its refusal is shown as GraphiQL shows any answer. A
 *  401/403 to the tab's own credential forgets it and asks again. */
async function fetchWithToken(url, init) {
  const headers = new Headers(init?.headers);
  const own = !headers.has("X-Auth-Token") && !headers.has("Authorization");
  if (own && trackingToken.signedIn() && !(await trackingSignIn.fresh())) {
    ask("Your sign-in has expired: sign in again.");
    throw new Error("signed out");
  }
  if (own) for (const [name, value] of Object.entries(trackingToken.headers())) headers.set(name, value);
  const response = await fetch(url, { ...init, headers });
  if ((response.status === 401 || response.status === 403) && own) {
    trackingToken.forget();
    ask(response.status === 401 ? "The gateway refused that sign-in: sign in again." : "The gateway refused that token.");
  }
  return response;
}

function start() {
  const url = location.origin + location.pathname;
  const fetcher = GraphiQL.createFetcher({
    url,
    subscriptionUrl: url.replace(/^http/, "ws"),
    // GraphiQL copies these into each subscription's connection_init payload: getters, so that each reads the
    // tab's credential then (a renewed token goes with the next subscription). Undefined ones are left out.
    wsConnectionParams: Object.defineProperties({}, {
      "X-Auth-Token": { enumerable: true, get: () => trackingToken.headers()["X-Auth-Token"] },
      Authorization: { enumerable: true, get: () => trackingToken.headers().Authorization },
    }),
    fetch: fetchWithToken,
  });
  form.hidden = true;
  container.hidden = false;
  root = ReactDOM.createRoot(container);
  root.render(React.createElement(GraphiQL, { fetcher, defaultQuery: EXAMPLE }));
}

function ask(message) {
  if (root) root.unmount();
  root = null;
  container.hidden = true;
  const error = document.getElementById("token-error");
  error.textContent = message || "";
  error.hidden = !message;
  form.hidden = false;
  document.getElementById("token").focus();
  showSignIn();
}

/** Shows "Sign in" when the gateway has an identity provider for the pages (TRACKING_OIDC_CLIENT_ID). */
async function showSignIn() {
  const known = await trackingSignIn.settings();
  document.getElementById("sign-in").hidden = !known;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  trackingToken.set(document.getElementById("token").value);
  if (trackingToken.held()) start();
});
document.getElementById("sign-in").addEventListener("click", () => {
  trackingSignIn.start(location.pathname).catch((error) => ask(error.message));
});
if (trackingToken.held()) start();
else ask("");
