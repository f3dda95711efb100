// A job: its counts, its task graph (or, over GRAPH_LIMIT tasks, a filtered table), and the selected task's
// fields, links and history; all kept live from the job's taskEvents subscription.

import { esc, gql, gqlAnswer, subscribe, throttled } from "./api.js";
import { byId, closest, element } from "./dom.js";
import { drawGraph } from "./graph.js";
import { showNeighbourhood } from "./neighbourhood.js";
import { CURSOR, DETAIL_FIELDS, DETAILS, EVENTS, JOB_GRAPH, JOB_HEAD, LEVELS, TASK_PAGE } from "./queries.js";
import { drawTimeline, markTimeline } from "./timeline.js";
import { chip, look, setDoneStatuses, shareBar, statusChips, statusText } from "./status.js";

export const GRAPH_LIMIT = 10_000; // jobs with more tasks show a filtered, paged task table instead of a graph
const REDRAW_MS = 500; // the most often events redraw the counts, the graph or the table
const LEVELS_MS = 5000; // the most often events recount the stages of a big job (it reads every task's links)
const LEVELS_SHOWN = 100; // stages listed in the overview; the rest are summed up in one line
/** @type {Set<string | null>} */
const FAILED = new Set(["FAILED", "ERROR"]); // the statuses status.js shows as failed

const REASON_SHOWN = 300; // characters of a refusal shown in the legend (a cycle's message lists every task on it)

/** Shows job `jobId` in `main`; returns the page's teardown. `failed` shows an error (or asks for a token),
 *  `recovered` takes it away once the job's counts were read again.
 *  @param {HTMLElement} main @param {string} jobId @param {(error: Error) => void} failed
 *  @param {() => void} recovered @returns {() => void} */
export function showJob(main, jobId, failed, recovered) {
  main.innerHTML = `<h2>Job ${esc(jobId)}</h2><div id="head"></div><p class="legend" id="hint"></p>
    <div class="tabs" role="group" aria-label="how to show the tasks"><button type="button" data-view="graph"
    aria-pressed="true">Graph</button><button type="button" data-view="timeline" aria-pressed="false">Timeline</button>
    </div><div class="job"><div class="graph" id="graph">Loading…</div><div class="details" id="details"></div></div>`;
  /** @type {OnSelect} */
  const select = (taskId, options = {}) => { selectTask(page, taskId, options).catch(failed); };
  // closed: the page was left; answers still on their way must not draw into the next one.
  /** @type {JobPage} */
  const page = { jobId, view: "graph", graph: null, table: null, hood: null, tasks: new Map(), selected: null,
    noPath: null, loading: false, closed: false, hadTasks: false, select, firstLevels: null, failed, recovered,
    column: byId("graph", HTMLElement), tabs: element(main, ".tabs", HTMLElement) };
  // Events are throttled, not debounced: under a steady stream the counts and the graph still follow (at most
  // every REDRAW_MS, and never later than REDRAW_MS plus one round trip after an event).
  const reload = throttled(() => loadJob(page).catch(failed), REDRAW_MS);
  const recount = throttled(async () => {
    const job = await showHead(page, jobId).catch(failed);
    if (job && page.table) page.table.offer(job.statusCounts);
  }, REDRAW_MS);
  page.tabs.onclick = (event) => {
    const wanted = closest(event, "[data-view]")?.dataset.view;
    if (!wanted || wanted === page.view) return;
    page.view = wanted;
    page.hood?.close(); // it lies over the column: the view asked for must show, not stay under it
    for (const tab of page.tabs.querySelectorAll("button")) tab.setAttribute("aria-pressed", String(tab === event.target));
    reload();
  };
  // Every read comes after the cursor the subscription starts from is taken: a change made in between is
  // delivered as an event, never lost between the first read and the subscription's start.
  let unsubscribe = () => {};
  /** @returns {Promise<string | null>} */
  const freshCursor = async () => (await gql(CURSOR, { job: jobId })).eventCursor;
  freshCursor().then((after) => {
    if (page.closed) return;
    // The overview by stage is asked for with the job's counts, before the job's size is known: a big job's
    // overview is on screen one round trip sooner; a job drawn as a graph drops the answer (links and statuses).
    page.firstLevels = levelsOf(jobId);
    reload();
    const onEvent = (/** @type {TaskEvent} */ event) => follow(page, event, reload, recount);
    unsubscribe = subscribe(EVENTS, { job: jobId }, onEvent, { after, freshCursor, onRestart: reload, onRefused: failed });
  }).catch(failed);
  return () => { page.closed = true; unsubscribe(); };
}

/** Reads the job again and draws it: its counts, then its graph or timeline, or (over GRAPH_LIMIT tasks) the
 *  current page of its table; the selected task's details after. @param {JobPage} page */
async function loadJob(page) {
  if (page.closed) return;
  page.loading = true;
  try {
    const job = await showHead(page, page.jobId);
    if (page.closed) return;
    if (!job) return showNoTask(page);
    page.hadTasks = true;
    if (job.taskCount > GRAPH_LIMIT) {
      page.table ??= taskTable(page.jobId, job, page.select, page.failed, page.firstLevels);
      page.tabs.hidden = true; // no graph, no timeline: too many tasks to draw
      showHint(page);
      return await page.table.refresh();
    }
    const { job: full, noPath } = await jobGraph(page.jobId);
    if (page.closed) return;
    if (!full) return showNoTask(page);
    page.noPath = noPath;
    page.table = null;
    page.tabs.hidden = false;
    page.tasks = new Map(full.tasks.map((task) => [task.id, task]));
    if (page.view === "timeline") {
      page.graph = null;
      drawTimeline(page.column, full, page.select);
    } else {
      const graph = await drawGraph(page.column, full, page.select, page.graph); // laid out off the main thread
      if (page.closed) return;
      page.graph = graph;
    }
    showHint(page);
    if (page.selected) await selectTask(page, page.selected);
  } finally {
    page.loading = false;
  }
}

/** A job without tasks: none yet, or none any more (every task deleted while the page was open); the graph, the
 *  table and the hint that spoke of its tasks go. @param {JobPage} page */
function showNoTask(page) {
  page.column.textContent = page.hadTasks ? "No task has this job id any more: its tasks were deleted."
    : "No task has this job id (yet).";
  page.graph = null;
  page.table = null;
  page.tasks = new Map();
  page.tabs.hidden = true; // nothing to show either way
  byId("hint", HTMLElement).textContent = "";
}

/** What an event of the job changes on the page: a status repainted at once, the counts and the table's rows
 *  recounted (throttled), anything else (tasks added, deleted, relinked, their times changed: the critical
 *  path) read again (`reload`, throttled).
 *  @param {JobPage} page @param {TaskEvent} event @param {() => void} reload @param {() => void} recount */
function follow(page, event, reload, recount) {
  // A page being fetched may have been read before this event: it is fetched once more when it is drawn.
  if (page.loading) reload();
  const known = page.tasks.get(event.taskId);
  const keepsLinks = event.changedFields.every((name) => name !== "nexts" && name !== "previous");
  // A task's times decide the critical path (and whether there is one): a change of them reads it again.
  const keepsPath = event.changedFields.every((name) => name !== "startTime" && name !== "finishTime");
  // its links are read again when it is reopened; an update's task is null when it was deleted since
  if (event.kind === "UPDATED" && event.task) page.hood?.paint(event.task);
  if (page.table) { // the page being read stays where it is; its rows, the counts and the stages follow
    page.table.refreshSoon();
    page.table.recountLevels();
    recount();
  } else if (event.kind === "UPDATED" && known && keepsLinks && page.graph) {
    Object.assign(known, event.task);
    page.graph?.paint(known);
    if (keepsPath) recount(); else reload(); // throttled like any redraw; it reads the counts too
  } else {
    reload();
  }
  if (page.selected === event.taskId) page.select(event.taskId);
}

let headsAsked = 0, headShown = 0; // answers can arrive out of order

/** The job's counts and progress above its graph or table; returns the job (null when it has no task).
 *  @param {JobPage} page @param {string} jobId @returns {Promise<JobHead | null>} */
async function showHead(page, jobId) {
  const asked = ++headsAsked;
  /** @type {{ job: JobHead | null, doneStatuses: string[] }} */
  const { job, doneStatuses: done } = await gql(JOB_HEAD, { id: jobId });
  if (page.closed || asked < headShown) return job; // a later answer is on screen already: this one may be older
  headShown = asked;
  page.recovered();
  setDoneStatuses(done);
  // No job: no task has its id (any more); counts left from before would contradict the line below them.
  byId("head", HTMLElement).innerHTML = job ? `<p><span id="task-count">${job.taskCount}</span> tasks ·
    <span id="done-count">${job.summary.doneCount}</span> done (${Math.round(job.summary.progress * 100)}%) ·
    ${statusChips(job.statusCounts)}</p>` : `<p><span id="task-count">0</span> tasks</p>`;
  return job;
}

/** The job's tasks, edges and critical path: { job, noPath: null }; when the gateway refuses the path alone (the
 *  links hold a cycle: GRAPH_CYCLE) the job with an empty path and noPath the start of the refusal's message.
 *  Any other error (a refused token included) is thrown.
 *  @param {string} jobId @returns {Promise<{ job: GraphJob | null, noPath: string | null }>} */
async function jobGraph(jobId) {
  const { data, errors = [] } = await gqlAnswer(JOB_GRAPH, { id: jobId });
  const refused = errors.filter((error) => error.path?.at(-1) === "criticalPath");
  if (errors.length > refused.length || !data) throw new Error(errors.map((error) => error.message).join("; "));
  const job = data.job;
  if (job) job.criticalPath ??= [];
  const reason = refused[0]?.message ?? null;
  return { job, noPath: reason && reason.length > REASON_SHOWN ? `${reason.slice(0, REASON_SHOWN)}…` : reason };
}

/** What the marks on screen mean, for the mode shown (the legend of the statuses is the chips above).
 *  @param {JobPage} page */
function showHint(page) {
  const hint = document.getElementById("hint");
  if (!hint) return;
  if (!page.table && !page.graph) {
    hint.textContent = "Each task with a start time as a bar to its finish (to now while running), grouped by " +
      "stage, ★ on the critical path; click a bar for the task's fields, links and history. Zoom: the wheel over " +
      "the time axis, Ctrl+wheel, + and - (0: the whole job); ← → move in time.";
    return;
  }
  hint.textContent = page.table
    ? "Click a row for the task's fields, links and history; the selected row is outlined in black."
    : "Click a task for its fields, links and history: it gets a solid black outline, the tasks blocking it a " +
      "dashed one. " + (page.noPath ? `No critical path shown: ${page.noPath}.` : page.graph?.critical
        ? "★ and thick links: the critical path (the longest chain by duration)."
        : "No critical path shown: no task of this job has a start time yet.");
}

/** The task's details beside the graph or table (its fields, what blocks it, its links, its history), and its
 *  marks in the graph, the drill-down, the table and the timeline; `centre` moves the graph to it.
 *  @param {JobPage} page @param {string} taskId @param {{ centre?: boolean }} [options] */
async function selectTask(page, taskId, { centre = false } = {}) {
  page.selected = taskId;
  /** @type {{ task: TaskDetails | null }} */
  const { task } = await gql(DETAILS, { id: taskId });
  if (page.closed || page.selected !== taskId) return; // left, or another task was chosen meanwhile
  for (const graph of [page.graph, page.hood]) graph?.mark(taskId, task ? task.blockedBy.map((t) => t.id) : []);
  if (centre) (page.hood ?? page.graph)?.centre(taskId);
  page.table?.mark(taskId);
  markTimeline(byId("graph", HTMLElement), taskId, centre);
  const details = byId("details", HTMLElement);
  if (!task) { details.innerHTML = `<p>Task ${esc(taskId)} no longer exists.</p>`; return; }
  const fields = DETAIL_FIELDS.filter((name) => task[name] !== null && task[name] !== undefined)
    .map((name) => `<dt>${name}</dt><dd>${name === "status" ? chip(task.status) : esc(String(task[name]))}</dd>`);
  const history = task.history.slice().reverse().map((change) =>
    `<tr><td>${esc(change.at)}</td><td>${change.kind}</td><td>${change.status ? chip(change.status) : ""}</td>
     <td>${esc(change.changedFields.join(", "))}</td></tr>`);
  details.innerHTML = `<h3>Task ${esc(task.name ?? task.id)} <small>(id ${esc(task.id)})</small></h3>
    <p><button type="button" class="open-hood">Neighbourhood</button> <small>its tasks before and after, as a graph</small></p>
    <dl>${fields.join("")}</dl>
    <h4>Blocked by</h4>${linked(task.blockedBy, "nothing: every task before it is done")}
    <h4>Previous tasks</h4>${linked(task.previous, "none")}<h4>Next tasks</h4>${linked(task.nexts, "none")}
    <h4>History of ${esc(task.name ?? task.id)}</h4>${task.historyTruncated
    ? `<p class="truncated">Only the newest ${task.history.length} changes are shown: older ones were left out ` +
      "(GraphQL <code>taskHistory(id, before:)</code> pages back through them).</p>"
    : ""}<table class="history"><thead><tr><th>When</th><th>Change</th>
    <th>Status</th><th>Fields</th></tr></thead><tbody>${history.join("") || '<tr><td colspan="4">none recorded</td></tr>'}
    </tbody></table>`;
  element(details, ".open-hood", HTMLButtonElement).onclick = () => openNeighbourhood(page, task.id);
  details.onclick = (event) => {
    const link = closest(event, "a[data-task]");
    if (link?.dataset.task === undefined) return;
    event.preventDefault();
    page.select(link.dataset.task, { centre: true }); // its failure shown like any other (a refused token…)
  };
  showHint(page);
}

/** The drill-down over the graph column (any job size): the task's ancestors and descendants as a graph.
 *  @param {JobPage} page @param {string} taskId */
async function openNeighbourhood(page, taskId) {
  page.hood?.close();
  const hood = await showNeighbourhood(element(document, ".job", HTMLElement), taskId, page.select, () => {
    if (page.hood === hood) page.hood = null;
  });
  if (page.closed) return;
  page.hood = hood;
  page.select(taskId);
}

/** Linked tasks as a list (HTML), each a link that selects it, or `none` when there are none.
 *  @param {GraphTask[]} tasks @param {string} none */
function linked(tasks, none) {
  if (!tasks.length) return `<p class="blocked-by">${none}</p>`;
  return `<ul class="linked">${tasks.map((t) => `<li><a href="#" data-task="${esc(t.id)}">${esc(t.name ?? "(no name)")}
    <small>id ${esc(t.id)}</small></a> ${chip(t.status)}</li>`).join("")}</ul>`;
}

/** The table that replaces the graph of a big job: filtered by status and name, paged by `Job.taskPage`, its
 *  current page fetched again (throttled) after events so its rows stay live.
 *  @param {string} jobId @param {JobHead} job @param {OnSelect} select @param {(error: Error) => void} failed
 *  @param {Promise<Level[] | Error> | null} firstLevels the overview asked for on opening the page
 *  @returns {TaskTable} */
function taskTable(jobId, job, select, failed, firstLevels) {
  /** @type {(string | null)[]} */
  const pages = [null]; // the cursor each visited page starts after
  /** @type {{ name?: string, depth?: number, status?: string[], statusNot?: string[] }} */
  let filter = {};
  /** @type {string | null} */
  let selected = null;
  let refreshes = 0;
  const container = byId("graph", HTMLElement);
  /** @type {Set<string>} */
  const statuses = new Set(); // every status the job has had while the table was open: the choices offered
  container.innerHTML = `<p class="legend">More than ${GRAPH_LIMIT} tasks: an overview by stage and a table
    instead of a graph.</p><div id="levels">Counting the stages…</div>
    <form class="filter" id="table-filter"><input name="name" placeholder="name contains" aria-label="name contains">
    <select name="status" aria-label="status"></select><input name="depth" type="number" min="0" step="1"
    placeholder="any stage" aria-label="stage"><button>Filter</button></form><div id="rows"></div>`;
  const rows = element(container, "#rows", HTMLElement);
  const tableFilter = element(container, "#table-filter", HTMLFormElement);
  const choice = element(tableFilter, "select", HTMLSelectElement);
  const depthInput = element(tableFilter, "input[name=depth]", HTMLInputElement);
  tableFilter.onsubmit = (event) => {
    event.preventDefault();
    const form = new FormData(tableFilter);
    const [kind, status] = String(form.get("status")).split(/:(.*)/s);
    const name = String(form.get("name") ?? "");
    filter = {};
    if (name) filter.name = name;
    if (form.get("depth") !== "") filter.depth = Number(form.get("depth"));
    if (kind === "in") filter.status = [status];
    if (kind === "not") filter.statusNot = [status];
    pages.length = 1;
    table.refresh().catch(failed);
  };
  const levels = element(container, "#levels", HTMLElement);
  levels.onclick = (event) => { // a stage's button: the table shows that stage's tasks
    const stage = closest(event, "button[data-stage]");
    if (!stage) return;
    depthInput.value = stage.dataset.stage ?? "";
    choice.value = stage.dataset.status ?? ""; // a stage's number: all its tasks
    tableFilter.requestSubmit();
  };
  rows.onclick = (event) => {
    const row = closest(event, "tr.task");
    if (row?.dataset.id !== undefined) select(row.dataset.id);
  };
  /** @type {TaskTable} */
  const table = {
    async refresh() {
      const asked = ++refreshes;
      /** @type {{ job: { taskPage: { edges: { node: TaskRowNode }[], pageInfo: PageInfo } } | null }} */
      const { job: found } = await gql(TASK_PAGE, { id: jobId, after: pages.at(-1), ...filter });
      if (asked !== refreshes) return; // a later page or filter was asked for meanwhile: this answer is stale
      if (!found) { rows.textContent = "No task has this job id (any more)."; return; }
      const { edges, pageInfo } = found.taskPage;
      rows.innerHTML = `<table><thead><tr><th>Id</th><th>Name</th><th>Status</th><th>Type</th><th>Updated</th></tr>
        </thead><tbody>${edges.map(({ node }) => `<tr class="task" data-id="${esc(node.id)}"><td>${esc(node.id)}</td>
        <td>${esc(node.name ?? "")}</td><td>${chip(node.status)}</td><td>${esc(node.type ?? "")}</td>
        <td>${esc(node.updateTimestamp ?? "")}</td></tr>`).join("") ||
        '<tr><td colspan="5">No task matches.</td></tr>'}</tbody></table><div class="pager">
        <button id="previous" ${pages.length > 1 ? "" : "disabled"}>Previous</button>
        <button id="next" ${pageInfo.hasNextPage ? "" : "disabled"}>Next</button></div>`;
      element(rows, "#previous", HTMLButtonElement).onclick = () => { pages.pop(); table.refresh().catch(failed); };
      element(rows, "#next", HTMLButtonElement).onclick = () => { pages.push(pageInfo.endCursor); table.refresh().catch(failed); };
      table.mark(selected);
    },
    // A stage filter reads every task's links on the gateway (as the overview does): refreshed as seldom.
    refreshSoon: () => (filter.depth === undefined ? refreshRows : refreshStage)(),
    offer(statusCounts) { // new statuses join the choices; the one chosen stays chosen
      const before = statuses.size;
      for (const { status } of statusCounts) if (status !== null) statuses.add(status);
      if (statuses.size === before && choice.options.length) return;
      const chosen = choice.value;
      choice.innerHTML = `<option value="">any status</option>${[...statuses].sort().map((s) =>
        `<option value="in:${esc(s)}">${esc(statusText(s))}</option><option value="not:${esc(s)}">not ${esc(statusText(s))}</option>`).join("")}`;
      choice.value = chosen;
    },
    recountLevels: throttled(() => {
      const answer = firstLevels ?? levelsOf(jobId); // the answer asked for on opening the page, used once
      firstLevels = null;
      return showLevels(levels, answer);
    }, LEVELS_MS),
    mark(taskId) {
      selected = taskId;
      for (const row of /** @type {NodeListOf<HTMLTableRowElement>} */ (rows.querySelectorAll("tr.task"))) {
        row.classList.toggle("selected", row.dataset.id === taskId);
        row.setAttribute("aria-selected", String(row.dataset.id === taskId));
      }
    },
  };
  const refreshRows = throttled(() => table.refresh().catch(failed), REDRAW_MS);
  const refreshStage = throttled(() => table.refresh().catch(failed), LEVELS_MS);
  table.offer(job.statusCounts);
  table.recountLevels();
  return table;
}

/** Job.levels of the job, asked for now: a promise of the levels, or of the error that refused them.
 *  @param {string} jobId @returns {Promise<Level[] | Error>} */
function levelsOf(jobId) {
  return gql(LEVELS, { id: jobId }).then(({ job }) => job?.levels ?? [], (error) => error);
}

/** The job's stages (Job.levels), the whole job in one small answer however many tasks it has: per stage, its
 *  task count, a bar split by status, the counts as text, and the failed, running and blocked tasks picked out
 *  (blocked: not started, waiting on a previous task that is not done). A stage's buttons show its tasks in the
 *  table below (taskPage's depth filter). An error (too many tasks, a cycle) is shown in place of the overview,
 *  not for the whole page.
 *  @param {HTMLElement} target @param {Promise<Level[] | Error>} answer */
async function showLevels(target, answer) {
  const levels = await answer;
  if (levels instanceof Error) {
    target.innerHTML = `<p class="note">No overview by stage: ${esc(levels.message)}</p>`;
    return;
  }
  /** @type {(Level & { failed: number, running: number })[]} */
  const counted = levels.map((level) => ({ ...level,
    failed: level.statusCounts.reduce((sum, { status, count }) => sum + (FAILED.has(status) ? count : 0), 0),
    running: level.statusCounts.find(({ status }) => status === "RUNNING")?.count ?? 0 }));
  /** A count that picks the stage's tasks in the table (with `status`: only those), or 0.
   *  @param {Level & { failed?: number, running?: number, blocked?: number }} level
   *  @param {"failed" | "running" | "blocked"} what @param {string | null | undefined} [status] */
  const pick = (level, what, status) => level[what] ? `<button type="button" class="pick ${what}" data-stage="${level.depth}"
    ${status ? `data-status="in:${status}"` : ""} title="show the stage's tasks${status ? ` (${status})` : ""}">
    ${level[what]}</button>` : `<span class="none">0</span>`;
  const rows = counted.slice(0, LEVELS_SHOWN).map((level) => {
    const parts = shareBar("stack", level.statusCounts.map(({ status, count }) => ({ fraction: count / level.count,
      fill: look(status).fill, title: `${statusText(status)} ${count}` })));
    const alert = level.failed ? "failed" : level.blockedCount ? "blocked" : "";
    return `<tr class="${alert}"><td><button type="button" class="stage" data-stage="${level.depth}"
      title="show the stage's tasks">${level.depth}</button></td><td>${level.count}</td>
      <td>${parts}</td><td>${statusChips(level.statusCounts)}</td>
      <td>${pick(level, "failed", level.statusCounts.find(({ status }) => FAILED.has(status))?.status)}</td>
      <td>${pick(level, "running", "RUNNING")}</td><td>${pick({ ...level, blocked: level.blockedCount }, "blocked")}</td></tr>`;
  });
  const rest = counted.slice(LEVELS_SHOWN);
  const more = rest.length ? `<tr><td colspan="7">${rest.length} deeper stages with
    ${rest.reduce((sum, level) => sum + level.count, 0)} tasks</td></tr>` : "";
  /** @typedef {"failed" | "running" | "blockedCount"} Counted */
  const total = (/** @type {Counted} */ what) => counted.reduce((sum, level) => sum + level[what], 0);
  const where = (/** @type {Counted} */ what) => counted.filter((level) => level[what]).map((level) => level.depth);
  const stagesOf = (/** @type {Counted} */ what) => where(what).length ? ` (stage${where(what).length > 1 ? "s" : ""} ${where(what).slice(0, 8)
    .join(", ")}${where(what).length > 8 ? ", …" : ""})` : "";
  target.innerHTML = `<p class="picked"><strong>${total("failed")}</strong> failed${stagesOf("failed")} ·
    <strong>${total("running")}</strong> running${stagesOf("running")} · <strong>${total("blockedCount")}</strong>
    blocked${stagesOf("blockedCount")} <span class="note">(blocked: not started, waiting on a previous task that
    is not done)</span></p><table class="levels"><thead><tr><th>Stage</th><th>Tasks</th><th>Share by status</th>
    <th>Statuses</th><th>Failed</th><th>Running</th><th>Blocked</th></tr></thead><tbody>${rows.join("")}${more}
    </tbody></table>`;
  performance.mark("overview-drawn");
}
