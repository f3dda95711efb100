// The live view: jobs, and a job's task graph, through the public GraphQL API only (POST /graphql and the
// graphql-transport-ws subscription), as any dashboard would use it. No framework, no build step: ES modules
// (api.js: GraphQL and the subscription; status.js: how a status looks; job.js: a job; graph.js: its graph).

import { Unauthorized, esc, gql } from "./api.js";
import { byId, element } from "./dom.js";
import { showJob } from "./job.js";
import { JOBS } from "./queries.js";
import { setDoneStatuses, shareBar, statusChips } from "./status.js";

const JOBS_PAGE = 20;
const main = byId("main", HTMLElement);
/** @type {(() => void) | null} */
let view = null; // the current page's teardown (closes its subscription)

// ---- token and routing ----------------------------------------------------------------------------------------

function route() {
  trackingToken.takeFromLink(); // the token every page of the gateway shares (/static/token.js)
  const params = new URLSearchParams(location.hash.slice(1));
  if (view) view();
  view = null;
  byId("live", HTMLElement).hidden = true; // shown by a page with a subscription
  if (!trackingToken.held()) return askForToken();
  byId("forget", HTMLButtonElement).hidden = false;
  const job = params.get("job");
  document.title = job ? `${job} · Tracking gateway` : "Jobs · Tracking gateway"; // tabs of several jobs apart
  view = job ? showJob(main, job, failed, recovered) : showJobs();
}

/** The token form, with why it is asked for again (a refused token). */
function askForToken(message = "") {
  byId("forget", HTMLButtonElement).hidden = true; // nothing to forget until a token or sign-in is held
  main.innerHTML = `<form class="filter" id="login"><label>Token (X-Auth-Token; a read-only one is enough)
    <input name="token" type="password" autocomplete="off" required autofocus></label>
    <button>Open</button><button type="button" id="sign-in" hidden>Sign in</button>
    <span class="error" role="alert">${esc(message)}</span></form>`;
  const login = byId("login", HTMLFormElement);
  // autofocus works only when a document loads: a form shown later (a token refused) is focused by hand, and
  // the refusal is an alert, read out when it appears.
  element(login, "input[name=token]", HTMLInputElement).focus();
  login.onsubmit = (event) => {
    event.preventDefault();
    trackingToken.set(String(new FormData(login).get("token")));
    route();
  };
  offerSignIn();
}

/** "Sign in" beside the token field, when the gateway has an identity provider (TRACKING_OIDC_CLIENT_ID). */
async function offerSignIn() {
  const known = await trackingSignIn.settings();
  const button = document.getElementById("sign-in");
  if (!known || !button) return;
  button.hidden = false;
  button.onclick = () => {
    trackingSignIn.start(location.pathname + location.hash).catch((error) => askForToken(error.message));
  };
}

/** An error shown above the page, or the token form again for a refused token. One line, replaced by the next
 *  error (a poll failing every 15 s must not pile lines up) and gone once a read succeeds (`recovered`); it says
 *  when, as what is shown below it was read before then. @param {Error} error */
function failed(error) {
  if (error instanceof Unauthorized) {
    trackingToken.forget();
    return askForToken(error.message);
  }
  let line = document.getElementById("page-error");
  if (!line) {
    line = document.createElement("p");
    line.id = "page-error";
    line.className = "error";
    line.setAttribute("role", "alert");
    main.prepend(line);
  }
  line.textContent = `${error.message} (at ${new Date().toLocaleTimeString()})`;
}

/** A read succeeded: the error line above the page goes. */
function recovered() {
  document.getElementById("page-error")?.remove();
}

byId("forget", HTMLButtonElement).onclick = () => {
  trackingToken.forget();
  route();
};
window.addEventListener("hashchange", route);

// ---- jobs -----------------------------------------------------------------------------------------------------

/** The jobs list, its first page read again every 15 s; returns the page's teardown. */
function showJobs() {
  /** @type {(string | null)[]} */
  const pages = [null]; // the cursor each visited page starts after, for "Previous"
  /** @type {{ idPrefix?: string, status?: string[] }} */
  let filter = {};
  let left = false; // the page was left: an answer still on its way must not draw into the next one
  main.innerHTML = `<form class="filter" id="filter">
      <input name="idPrefix" placeholder="job id starts with" aria-label="job id starts with">
      <input name="status" placeholder="has a task in status" aria-label="has a task in status">
      <button>Filter</button><span class="note" id="refreshed"></span></form><div id="jobs">Loading…</div>`;
  const filterForm = byId("filter", HTMLFormElement);
  filterForm.onsubmit = (event) => {
    event.preventDefault();
    const form = new FormData(filterForm);
    const idPrefix = String(form.get("idPrefix") ?? ""), status = String(form.get("status") ?? "");
    filter = {};
    if (idPrefix) filter.idPrefix = idPrefix;
    if (status) filter.status = status.split(",").map((s) => s.trim());
    pages.length = 1;
    load();
  };
  const load = async () => {
    try {
      const { jobs, doneStatuses: done } = await gql(JOBS, { first: JOBS_PAGE, after: pages.at(-1), filter });
      if (left) return;
      recovered();
      setDoneStatuses(done);
      byId("jobs", HTMLElement).innerHTML = jobsTable(jobs.edges.map((/** @type {{ node: JobRow }} */ edge) => edge.node)) +
        `<div class="pager"><button id="previous" ${pages.length > 1 ? "" : "disabled"}>Previous</button>
         <button id="next" ${jobs.pageInfo.hasNextPage ? "" : "disabled"}>Next</button></div>`;
      byId("previous", HTMLButtonElement).onclick = () => { pages.pop(); load(); };
      byId("next", HTMLButtonElement).onclick = () => { pages.push(jobs.pageInfo.endCursor); load(); };
      // No "live" mark here: this list is polled, not subscribed; it says when it was last read instead.
      byId("refreshed", HTMLElement).textContent = pages.length === 1
        ? `read at ${new Date().toLocaleTimeString()}, again every 15 s` : "";
    } catch (error) {
      if (!left) failed(/** @type {Error} */ (error));
    }
  };
  load();
  const refresh = setInterval(() => { if (pages.length === 1) load(); }, 15000); // the first page stays current
  return () => { left = true; clearInterval(refresh); };
}

/** The jobs as a table (HTML), each a link to its page. @param {JobRow[]} jobs */
function jobsTable(jobs) {
  if (!jobs.length) return "<p>No jobs.</p>";
  const rows = jobs.map((job) => `<tr data-job="${esc(job.id)}">
      <td><a href="#job=${encodeURIComponent(job.id)}">${esc(job.id)}</a></td><td>${job.taskCount}</td>
      <td><span class="done-bar" title="${Math.round(job.summary.progress * 100)}% done">${shareBar("progress",
        [{ fraction: job.summary.progress }])}</span>${Math.round(job.summary.progress * 100)}%</td>
      <td>${statusChips(job.statusCounts)}</td><td>${esc(job.summary.lastUpdate ?? "")}</td></tr>`);
  return `<table><thead><tr><th>Job</th><th>Tasks</th><th>Done</th><th>Statuses</th><th>Last update</th>
    </tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

route();
