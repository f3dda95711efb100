// The live view: jobs, and a job's task graph, through the public GraphQL API only (POST /graphql and the
// graphql-transport-ws subscription), as any dashboard would use it. No framework, no build step: ES modules
// (api.js: GraphQL and the subscription; status.js: how a status looks; job.js: a job; graph.js: its graph).

import { Unauthorized, esc, gql } from "./api.js";
import { showJob } from "./job.js";
import { JOBS } from "./queries.js";
import { setDoneStatuses, shareBar, statusChips } from "./status.js";

const JOBS_PAGE = 20;
const main = document.getElementById("main");
let view = null; // the current page's teardown (closes its subscription)

// ---- token and routing ----------------------------------------------------------------------------------------

function route() {
  trackingToken.takeFromLink(); // the token every page of the gateway shares (/static/token.js)
  const params = new URLSearchParams(location.hash.slice(1));
  if (view) view();
  view = null;
  document.getElementById("live").hidden = true; // shown by a page with a subscription
  if (!trackingToken.held()) return askForToken();
  const job = params.get("job");
  view = job ? showJob(main, job, failed) : showJobs();
}

function askForToken(message = "") {
  main.innerHTML = `<form class="filter" id="login"><label>Token (X-Auth-Token; a read-only one is enough)
    <input name="token" type="password" autocomplete="off" required autofocus></label>
    <button>Open</button><button type="button" id="sign-in" hidden>Sign in</button>
    <span class="error">${esc(message)}</span></form>`;
  document.getElementById("login").onsubmit = (event) => {
    event.preventDefault();
    trackingToken.set(new FormData(event.target).get("token"));
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

function failed(error) {
  if (error instanceof Unauthorized) {
    trackingToken.forget();
    return askForToken(error.message);
  }
  main.insertAdjacentHTML("afterbegin", `<p class="error">${esc(error.message)}</p>`);
}

document.getElementById("forget").onclick = () => {
  trackingToken.forget();
  route();
};
window.addEventListener("hashchange", route);

// ---- jobs -----------------------------------------------------------------------------------------------------

function showJobs() {
  const pages = [null]; // the cursor each visited page starts after, for "Previous"
  let filter = {};
  main.innerHTML = `<form class="filter" id="filter">
      <input name="idPrefix" placeholder="job id starts with" aria-label="job id starts with">
      <input name="status" placeholder="has a task in status" aria-label="has a task in status">
      <button>Filter</button><span class="note" id="refreshed"></span></form><div id="jobs">Loading…</div>`;
  document.getElementById("filter").onsubmit = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    filter = {};
    if (form.get("idPrefix")) filter.idPrefix = form.get("idPrefix");
    if (form.get("status")) filter.status = form.get("status").split(",").map((s) => s.trim());
    pages.length = 1;
    load();
  };
  const load = async () => {
    try {
      const { jobs, doneStatuses: done } = await gql(JOBS, { first: JOBS_PAGE, after: pages.at(-1), filter });
      setDoneStatuses(done);
      document.getElementById("jobs").innerHTML = jobsTable(jobs.edges.map((edge) => edge.node)) +
        `<div class="pager"><button id="previous" ${pages.length > 1 ? "" : "disabled"}>Previous</button>
         <button id="next" ${jobs.pageInfo.hasNextPage ? "" : "disabled"}>Next</button></div>`;
      document.getElementById("previous").onclick = () => { pages.pop(); load(); };
      document.getElementById("next").onclick = () => { pages.push(jobs.pageInfo.endCursor); load(); };
      // No "live" mark here: this list is polled, not subscribed; it says when it was last read instead.
      document.getElementById("refreshed").textContent = pages.length === 1
        ? `read at ${new Date().toLocaleTimeString()}, again every 15 s` : "";
    } catch (error) {
      failed(error);
    }
  };
  load();
  const refresh = setInterval(() => { if (pages.length === 1) load(); }, 15000); // the first page stays current
  return () => clearInterval(refresh);
}

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
