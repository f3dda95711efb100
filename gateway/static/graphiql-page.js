// GraphiQL (graphql_schema/graphiql.html) on the token every page shares (token.js): asks for it when the tab has
// none, and again when the gateway refuses it. A file of its own, not inline: the page's policy runs no inline script.
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

/** fetch, but a 401/403 to the token this page holds forgets it and asks again (a header the Headers tab
 *  sets instead is the person's own try: its refusal is shown as GraphiQL shows any answer). */
async function fetchWithToken(url, init) {
  const response = await fetch(url, init);
  const sent = new Headers(init?.headers).get("X-Auth-Token");
  if ((response.status === 401 || response.status === 403) && sent === trackingToken.get()) {
    trackingToken.forget();
    ask("The gateway refused that token.");
  }
  return response;
}

function start(token) {
  const url = location.origin + location.pathname;
  const fetcher = GraphiQL.createFetcher({
    url,
    subscriptionUrl: url.replace(/^http/, "ws"),
    headers: { "X-Auth-Token": token },
    wsConnectionParams: { "X-Auth-Token": token },
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
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  trackingToken.set(document.getElementById("token").value);
  if (trackingToken.get()) start(trackingToken.get());
});
const token = trackingToken.get();
if (token) start(token);
else ask("");
