// The live view: jobs, and a job's task graph, through the public GraphQL API only (POST /graphql and the
// graphql-transport-ws subscription), as any dashboard would use it. No framework, no build step.

const GRAPH_LIMIT = 2000; // jobs with more tasks show status counts and a paged task table instead of a graph
const JOBS_PAGE = 20;
const TASKS_PAGE = 100;
const REDRAW_MS = 500; // the most often events redraw the counts or the graph
let doneStatuses = new Set(); // the gateway's TRACKING_DONE_STATUSES (Query.doneStatuses), read with every page
const COLOURS = { RUNNING: "#0969da", FAILED: "#cf222e", ERROR: "#cf222e", SKIPPED: "#8c959f", READY: "#6e7781" };
const DETAIL_FIELDS = ["name", "status", "type", "jobId", "root", "description", "startTime", "finishTime",
  "creationTimestamp", "updateTimestamp", "workflow", "executionCode", "executionDescription", "runningStatus"];

const main = document.getElementById("main");
let view = null; // the current page's teardown (closes its subscription)

// ---- token and routing ----------------------------------------------------------------------------------------

function route() {
  trackingToken.takeFromLink(); // the token every page of the gateway shares (/static/token.js)
  const params = new URLSearchParams(location.hash.slice(1));
  if (view) view();
  view = null;
  if (!trackingToken.get()) return askForToken();
  const job = params.get("job");
  view = job ? showJob(job) : showJobs();
}

function askForToken(message = "") {
  main.innerHTML = `<form class="filter" id="login"><label>Token (X-Auth-Token; a read-only one is enough)
    <input name="token" type="password" autocomplete="off" required autofocus></label>
    <button>Open</button><span class="error">${esc(message)}</span></form>`;
  document.getElementById("login").onsubmit = (event) => {
    event.preventDefault();
    trackingToken.set(new FormData(event.target).get("token"));
    route();
  };
}

document.getElementById("forget").onclick = () => {
  trackingToken.forget();
  route();
};
window.addEventListener("hashchange", route);

// ---- GraphQL --------------------------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function gql(query, variables = {}) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Auth-Token": trackingToken.get() },
    body: JSON.stringify({ query, variables }),
  });
  if (response.status === 401 || response.status === 403) throw new Unauthorized("the token was refused");
  const body = await response.json();
  if (body.errors?.length) throw new Error(body.errors.map((error) => error.message).join("; "));
  return body.data;
}

function failed(error) {
  if (error instanceof Unauthorized) {
    trackingToken.forget();
    return askForToken(error.message);
  }
  main.insertAdjacentHTML("afterbegin", `<p class="error">${esc(error.message)}</p>`);
}

/** A graphql-transport-ws subscription that reconnects after a disconnect and resumes after the last event
 *  it delivered (`after`), so nothing is missed or repeated. Returns a function that ends it. */
function subscribe(query, variables, onEvent, onExpired) {
  let socket = null, after = null, retryMs = 500, ended = false;
  const live = document.getElementById("live");
  const connect = () => {
    socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
      "graphql-transport-ws");
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init",
      payload: { "X-Auth-Token": trackingToken.get() } }));
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "connection_ack") {
        live.classList.add("on");
        retryMs = 500;
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables: { ...variables, after } } }));
      } else if (data.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (data.type === "next" && data.payload.data) {
        const event = data.payload.data.taskEvents;
        after = event.cursor;
        onEvent(event);
      } else if (data.type === "next" || data.type === "error") {
        const errors = data.payload.errors || data.payload;
        if (errors.some((error) => error.extensions?.code === "CURSOR_EXPIRED")) {
          after = null;
          onExpired();
        }
        socket.close();
      } else if (data.type === "complete") {
        socket.close();
      }
    };
    socket.onclose = () => {
      live.classList.remove("on");
      if (ended) return;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  };
  connect();
  return () => { ended = true; socket.close(); live.classList.remove("on"); };
}

// ---- jobs -----------------------------------------------------------------------------------------------------

const JOBS = `query Jobs($first: Int!, $after: String, $filter: JobFilter) {
  jobs(first: $first, after: $after, filter: $filter) {
    edges { node { id taskCount statusCounts { status count } summary { progress lastUpdate } } }
    pageInfo { hasNextPage endCursor } }
  doneStatuses }`;

function showJobs() {
  const pages = [null]; // the cursor each visited page starts after, for "Previous"
  let filter = {};
  main.innerHTML = `<form class="filter" id="filter">
      <input name="idPrefix" placeholder="job id starts with"><input name="status" placeholder="has a task in status">
      <button>Filter</button></form><div id="jobs">Loading…</div>`;
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
      doneStatuses = new Set(done);
      document.getElementById("jobs").innerHTML = jobsTable(jobs.edges.map((edge) => edge.node)) +
        `<div class="pager"><button id="previous" ${pages.length > 1 ? "" : "disabled"}>Previous</button>
         <button id="next" ${jobs.pageInfo.hasNextPage ? "" : "disabled"}>Next</button></div>`;
      document.getElementById("previous").onclick = () => { pages.pop(); load(); };
      document.getElementById("next").onclick = () => { pages.push(jobs.pageInfo.endCursor); load(); };
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
      <td><div class="bar" title="${Math.round(job.summary.progress * 100)}% done">
        <span style="width:${job.summary.progress * 100}%"></span></div></td>
      <td>${statusChips(job.statusCounts)}</td><td>${esc(job.summary.lastUpdate ?? "")}</td></tr>`);
  return `<table><thead><tr><th>Job</th><th>Tasks</th><th>Progress</th><th>Statuses</th><th>Last update</th>
    </tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function statusChips(counts) {
  return counts.map(({ status, count }) =>
    `<span class="chip" style="background:${colour(status)}">${esc(status ?? "none")} ${count}</span>`).join("");
}

// ---- a job ----------------------------------------------------------------------------------------------------

const JOB_HEAD = `query Job($id: String!) { job(id: $id) { id taskCount statusCounts { status count }
  summary { doneCount progress lastUpdate durationMs firstStart } } doneStatuses }`;
const JOB_GRAPH = `query Graph($id: String!) { job(id: $id) { tasks { id name status } edges { from to }
  criticalPath { id } } }`;
const TASK_PAGE = `query Page($id: String!, $after: String) { job(id: $id) {
  taskPage(first: ${TASKS_PAGE}, after: $after) { edges { node { id name status type updateTimestamp } }
  pageInfo { hasNextPage endCursor } } } }`;
const DETAILS = `query Details($id: ID!) { task(id: $id) { id ${DETAIL_FIELDS.join(" ")} blockedBy(transitive: true) { id }
  history { at kind changedFields status } } }`;
const EVENTS = `subscription Events($job: String!, $after: String) { taskEvents(jobId: $job, after: $after) {
  kind taskId cursor changedFields task { id name status } } }`;

function showJob(jobId) {
  main.innerHTML = `<h2>Job ${esc(jobId)}</h2><div id="head"></div>
    <div class="job"><div class="graph" id="graph">Loading…</div><div class="details" id="details">
    <p class="legend">Click a task for its fields and history. Gold: critical path; dashed red: what blocks the
    selected task.</p></div></div>`;
  const graph = { tasks: new Map(), selected: null, blocking: new Set(), mode: null };
  // Events are throttled, not debounced: under a steady stream the counts and the graph still follow (at most
  // every REDRAW_MS, and never later than REDRAW_MS plus one round trip after an event).
  const reload = throttled(() => load().catch(failed), REDRAW_MS);
  const recount = throttled(() => showHead(jobId).catch(failed), REDRAW_MS);
  const load = async () => {
    graph.loading = true;
    try {
      const job = await showHead(jobId);
      if (!job) { document.getElementById("graph").textContent = "No task has this job id (yet)."; return; }
      if (job.taskCount > GRAPH_LIMIT) return await showTaskTable(jobId, graph);
      const { job: full } = await gql(JOB_GRAPH, { id: jobId });
      drawGraph(full, graph);
    } finally {
      graph.loading = false;
    }
  };
  const onEvent = (event) => {
    // A graph being fetched may have been read before this event: it is fetched once more when it is drawn.
    if (graph.loading) reload();
    const known = graph.tasks.get(event.taskId);
    const keepsLinks = event.changedFields.every((name) => name !== "nexts" && name !== "previous");
    if (graph.mode === "table") { // the page being read stays put; its counts follow
      recount();
    } else if (event.kind === "UPDATED" && known && keepsLinks) {
      known.status = event.task.status;
      known.name = event.task.name;
      paintTask(event.taskId, graph);
      recount();
    } else {
      reload();
    }
    if (graph.selected === event.taskId) selectTask(event.taskId, graph);
  };
  reload();
  return subscribe(EVENTS, { job: jobId }, onEvent, reload);
}

let headsAsked = 0, headShown = 0; // answers can arrive out of order

/** The job's counts and progress above its graph or table; returns the job (null when it has no task). */
async function showHead(jobId) {
  const asked = ++headsAsked;
  const { job, doneStatuses: done } = await gql(JOB_HEAD, { id: jobId });
  if (asked < headShown) return job; // a later answer is on screen already: this one may be older
  headShown = asked;
  doneStatuses = new Set(done);
  if (job) document.getElementById("head").innerHTML = `<p><span id="task-count">${job.taskCount}</span> tasks ·
    <span id="done-count">${job.summary.doneCount}</span> done (${Math.round(job.summary.progress * 100)}%) ·
    ${statusChips(job.statusCounts)}</p>`;
  return job;
}

function drawGraph(job, graph) {
  graph.mode = "graph";
  graph.tasks = new Map(job.tasks.map((task) => [task.id, task]));
  const critical = new Set(job.criticalPath.map((task) => task.id));
  const layout = new dagre.graphlib.Graph();
  layout.setGraph({ rankdir: "LR", nodesep: 12, ranksep: 40, ranker: "longest-path" });
  layout.setDefaultEdgeLabel(() => ({}));
  for (const task of job.tasks) layout.setNode(task.id, { width: 140, height: 28 });
  for (const edge of job.edges) layout.setEdge(edge.from, edge.to);
  performance.mark("graph-fetched");
  dagre.layout(layout, { disableOptimalOrderHeuristic: true }); // its crossing-minimisation sweeps took seconds
  performance.mark("graph-laid-out");
  const { width, height } = layout.graph();
  const edges = job.edges.map((edge) => {
    const points = layout.edge(edge.from, edge.to).points.map((p) => `${p.x},${p.y}`).join(" L");
    const onPath = critical.has(edge.from) && critical.has(edge.to);
    return `<path d="M${points}"${onPath ? ' class="critical"' : ""}/>`;
  });
  const nodes = job.tasks.map((task) => {
    const { x, y } = layout.node(task.id);
    return `<g class="task${critical.has(task.id) ? " critical" : ""}" data-id="${esc(task.id)}"
      transform="translate(${x - 70},${y - 14})"><title>${esc(task.id)}</title>
      <rect width="140" height="28" fill="${colour(task.status)}"/>
      <text x="6" y="18" fill="#fff">${esc(label(task))}</text></g>`;
  });
  const container = document.getElementById("graph");
  container.innerHTML = `<svg width="${width + 20}" height="${height + 20}" viewBox="-10 -10 ${width + 20} ${height + 20}">
    <defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" orient="auto">
    <path d="M0,0 L8,4 L0,8 z" fill="#8c959f" stroke="none"/></marker></defs>${edges.join("")}${nodes.join("")}</svg>`;
  container.onclick = (event) => {
    const box = event.target.closest(".task");
    if (box) selectTask(box.dataset.id, graph);
  };
  if (graph.selected) selectTask(graph.selected, graph);
  performance.mark("graph-drawn"); // make bench reads when the first graph was on screen
}

function paintTask(taskId, graph) {
  const box = document.querySelector(`.task[data-id="${CSS.escape(taskId)}"]`);
  if (!box) return;
  const task = graph.tasks.get(taskId);
  box.querySelector("rect").setAttribute("fill", colour(task.status));
  box.querySelector("text").textContent = label(task);
}

async function selectTask(taskId, graph) {
  graph.selected = taskId;
  const { task } = await gql(DETAILS, { id: taskId }).catch((error) => { failed(error); return {}; });
  for (const box of document.querySelectorAll(".task.selected, .task.blocking")) box.classList.remove("selected", "blocking");
  if (!task) return;
  document.querySelector(`.task[data-id="${CSS.escape(taskId)}"]`)?.classList.add("selected");
  for (const { id } of task.blockedBy) document.querySelector(`.task[data-id="${CSS.escape(id)}"]`)?.classList.add("blocking");
  const fields = DETAIL_FIELDS.filter((name) => task[name] !== null && task[name] !== undefined)
    .map((name) => `<dt>${name}</dt><dd>${esc(String(task[name]))}</dd>`);
  const history = task.history.slice().reverse().map((change) =>
    `<tr><td>${esc(change.at)}</td><td>${change.kind}</td><td>${esc(change.status ?? "")}</td>
     <td>${esc(change.changedFields.join(", "))}</td></tr>`);
  document.getElementById("details").innerHTML = `<h3>Task ${esc(task.id)}</h3><dl>${fields.join("")}</dl>
    <p>Blocked by: ${task.blockedBy.map((t) => esc(t.id)).join(", ") || "nothing"}</p>
    <h4>History</h4><table><tbody>${history.join("") || "<tr><td>none recorded</td></tr>"}</tbody></table>`;
}

function showTaskTable(jobId, graph) {
  graph.mode = "table";
  const pages = [null];
  const container = document.getElementById("graph");
  const load = async () => {
    const { job } = await gql(TASK_PAGE, { id: jobId, after: pages.at(-1) });
    const rows = job.taskPage.edges.map(({ node }) => `<tr class="task" data-id="${esc(node.id)}"><td>${esc(node.id)}</td>
      <td>${esc(node.name ?? "")}</td><td><span class="chip" style="background:${colour(node.status)}">
      ${esc(node.status ?? "none")}</span></td><td>${esc(node.type ?? "")}</td><td>${esc(node.updateTimestamp ?? "")}</td></tr>`);
    container.innerHTML = `<p class="legend">More than ${GRAPH_LIMIT} tasks: a table instead of a graph.</p>
      <table><thead><tr><th>Id</th><th>Name</th><th>Status</th><th>Type</th><th>Updated</th></tr></thead>
      <tbody>${rows.join("")}</tbody></table><div class="pager">
      <button id="previous" ${pages.length > 1 ? "" : "disabled"}>Previous</button>
      <button id="next" ${job.taskPage.pageInfo.hasNextPage ? "" : "disabled"}>Next</button></div>`;
    document.getElementById("previous").onclick = () => { pages.pop(); load().catch(failed); };
    document.getElementById("next").onclick = () => { pages.push(job.taskPage.pageInfo.endCursor); load().catch(failed); };
    container.onclick = (event) => {
      const row = event.target.closest(".task");
      if (row) selectTask(row.dataset.id, graph);
    };
  };
  return load();
}

// ---- helpers --------------------------------------------------------------------------------------------------

function colour(status) {
  if (status in COLOURS) return COLOURS[status]; // SKIPPED stays grey, done or not
  if (doneStatuses.has(status)) return "#2da44e";
  let hash = 0;
  for (const char of status ?? "") hash = (hash * 31 + char.charCodeAt(0)) % 360;
  return status ? `hsl(${hash}, 45%, 42%)` : "#afb8c1";
}

/** `action` (returning a promise) run after a call, at most once every `ms` and never two at a time: a call
 *  while it runs runs it once more when it is done, so the last call is always followed by a complete run. */
function throttled(action, ms) {
  let timer = null, running = false, again = false, last = -Infinity;
  const run = async () => {
    timer = null;
    running = true;
    again = false;
    last = performance.now();
    try { await action(); } finally { running = false; if (again) schedule(); }
  };
  const schedule = () => {
    again = true;
    if (timer !== null || running) return;
    timer = setTimeout(run, Math.max(0, last + ms - performance.now()));
  };
  return schedule;
}

function label(task) {
  const text = `${task.name ?? task.id} · ${task.status ?? "none"}`;
  return text.length > 22 ? text.slice(0, 21) + "…" : text;
}

function esc(value) {
  return String(value).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

route();
