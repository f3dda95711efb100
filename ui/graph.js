// A job's task graph drawn on a canvas (up to 10,000 tasks stay smooth): laid out left to right in a Web Worker
// (layout.js), moved with d3-zoom (drag, wheel, pinch) or the keys (arrows, + and -, 0 to fit), with a minimap,
// "go to task", a status filter that dims the other tasks, and, up to LIST_LIMIT tasks, a list of the tasks as
// buttons (the keyboard's and screen readers' way to each task).

import { esc } from "./api.js";
import { look } from "./status.js";

const BOX = { width: 220, height: 52 };
const GAPS = { rank: 70, node: 14 };
const LIST_LIMIT = 300; // up to this many tasks each is a Tab stop (Enter selects it); above, "go to task" reaches them
const READABLE = 0.75; // the smallest zoom at which full box labels are drawn (12 px text at 9 px)
const COMPACT = 0.45; // from this zoom up to READABLE, one line (icon and name) at 11 px on screen
const MAX_ZOOM = 4;
const CURVES = 0.3; // below this zoom links are straight (curves would not show) and carry no arrowheads
const LINKS_PITCH = 3; // screen pixels between the rows of tasks below which links are left out (a grey blur)
const FONT = "12px system-ui, sans-serif";
const BACKGROUND = "#f6f8fa";
const LINK = "#8c959f";
const MINIMAP = { width: 200, height: 130 };
// At most this many characters of a name are measured for a box (two lines hold about 70) or put in the hover
// tip: a name a tool stored a million characters long must not freeze the page.
const LABEL_CHARS = 200;
const TIP_CHARS = 500;

/** Draws `job` ({tasks, edges, criticalPath}) into `container`, where `before` (the last handle, on a redraw)
 *  left the view and the filter; resolves to the graph's handle once laid out and drawn:
 *  { critical, paint(task), mark(selectedId, blockingIds), centre(taskId), reveal(taskId), fit(), dim(status),
 *  kept(), released() (resolves once no pointer is held on it), canvas }.
 *  `canvas.graphView` answers what is on screen (for tests and the bench): view(), at(taskId), marks(). */
export async function drawGraph(container, job, onSelect, before = null) {
  performance.mark("graph-fetched");
  const tasks = job.tasks.slice();
  const index = new Map(tasks.map((task, i) => [task.id, i]));
  const links = job.edges.filter((edge) => index.has(edge.from) && index.has(edge.to));
  const layout = await layOut(tasks.length, links.map((e) => index.get(e.from)), links.map((e) => index.get(e.to)));
  performance.mark("graph-laid-out");
  // Read once laid out, and once the pointer held on the last graph is released: a redraw replaces the canvas,
  // which would end a drag half way and undo what moved while the layout ran.
  await before?.released();
  const kept = before?.kept() ?? { transform: null, dim: "", typed: "", focus: null, search: null };
  const timed = tasks.some((task) => task.startTime);
  const critical = new Set(timed ? job.criticalPath.map((task) => index.get(task.id)).filter((i) => i !== undefined) : []);
  layout.onPath = links.map((edge) => critical.has(index.get(edge.from)) && critical.has(index.get(edge.to)));
  const listed = tasks.length <= LIST_LIMIT;
  container.innerHTML = `<div class="tools">
      <button type="button" data-act="fit" title="fit the whole graph (key 0)">Fit</button>
      <button type="button" data-act="in" title="zoom in (key +)">+</button>
      <button type="button" data-act="out" title="zoom out (key -)">−</button>
      <form class="goto"><input name="task" placeholder="go to task (id or name)" aria-label="go to task by id or name">
        <button>Go</button></form>
      <label>Show <select class="dim-filter" aria-label="highlight tasks in status"></select></label>
      <span class="note goto-note" role="status"></span></div>
    <div class="canvas-wrap"><canvas class="graph-canvas" tabindex="0" role="img" aria-label="task graph of
      ${tasks.length} tasks: drag or use the arrow keys to move, the wheel or + and - to zoom, 0 to fit${listed
      ? "; Tab goes through the tasks" : "; go to task finds one"}"></canvas>
      <canvas class="minimap" width="${MINIMAP.width}" height="${MINIMAP.height}" aria-hidden="true"
        title="the whole graph: click or drag to move the view there"></canvas>
      <div class="tip" hidden></div></div>
    ${listed ? `<ul class="task-list" aria-label="tasks">${tasks.map((task) =>
      `<li><button type="button" class="task" data-id="${esc(task.id)}">${label(task)}</button></li>`).join("")}</ul>` : ""}`;
  const canvas = container.querySelector(".graph-canvas");
  const filter = container.querySelector(".dim-filter");
  const offered = new Set(); // the statuses the filter offers: every status the tasks have had since drawn
  const offer = () => { // a status that appears by a live repaint joins the choices; the chosen one stays
    const before = offered.size;
    for (const task of tasks) offered.add(task.status ?? "");
    if (offered.size === before && filter.options.length) return;
    const chosen = filter.value;
    filter.innerHTML = `<option value="">every status</option>${[...offered].sort().map((s) =>
      `<option value="=${esc(s)}">${esc(s || "none")}</option>`).join("")}`;
    filter.value = chosen;
  };
  offer();
  if ([...filter.options].some((option) => option.value === kept.dim)) filter.value = kept.dim;
  // Every choice but "every status" is "=" and the status ("=" alone: none), so no status can mean "every".
  const chosenStatus = () => (filter.value === "" ? null : filter.value.slice(1));
  const state = { selected: -1, blocking: new Set(), focused: -1, dim: chosenStatus(), timed };
  const scene = makeScene(canvas, container.querySelector(".minimap"), tasks, layout, critical, state);
  const view = viewport(canvas, layout, scene, kept.transform);
  const typed = container.querySelector(".goto input");
  typed.value = kept.typed;
  const buttons = listed ? new Map([...container.querySelectorAll("button.task")].map((b) => [b.dataset.id, b])) : null;
  const tip = container.querySelector(".tip");
  let refocusing = false;
  let held = null; // while a pointer pressed on the graph or the minimap is down: resolves when it is released
  const hold = () => {
    held ??= new Promise((resolve) => {
      const release = (event) => {
        if (event.type === "pointermove" && event.buttons) return;
        for (const kind of ["pointerup", "pointercancel", "pointermove"]) window.removeEventListener(kind, release, true);
        held = null;
        resolve();
      };
      for (const kind of ["pointerup", "pointercancel", "pointermove"]) window.addEventListener(kind, release, true);
    });
  };
  canvas.addEventListener("pointerdown", hold);
  container.querySelector(".minimap").addEventListener("pointerdown", hold);

  canvas.addEventListener("click", (event) => {
    const hit = scene.hit(...view.world(event));
    if (hit >= 0) onSelect(tasks[hit].id);
  });
  canvas.addEventListener("pointermove", (event) => {
    const hit = event.buttons ? -1 : scene.hit(...view.world(event));
    tip.hidden = hit < 0;
    canvas.style.cursor = hit < 0 ? "" : "pointer";
    if (hit < 0) return;
    const task = tasks[hit];
    tip.replaceChildren(isolated(clipped(named(task.name) ?? "(no name)", TIP_CHARS)), " · ",
      isolated(task.status ?? "none"), ` · id ${task.id}`);
    const wrap = canvas.getBoundingClientRect();
    // below right of the pointer, or left of it / above it where it would leave the graph (and scroll it)
    const right = event.clientX - wrap.left + 14, below = event.clientY - wrap.top + 14;
    tip.style.left = `${right + tip.offsetWidth > wrap.width ? Math.max(0, right - 28 - tip.offsetWidth) : right}px`;
    tip.style.top = `${below + tip.offsetHeight > wrap.height ? Math.max(0, below - 28 - tip.offsetHeight) : below}px`;
  });
  canvas.addEventListener("pointerleave", () => { tip.hidden = true; });
  container.querySelector(".task-list")?.addEventListener("focusin", (event) => {
    state.focused = index.get(event.target.dataset.id) ?? -1;
    if (state.focused >= 0 && !refocusing) view.show(layout.x[state.focused], layout.y[state.focused]);
    scene.draw();
  });
  container.querySelector(".task-list")?.addEventListener("focusout", () => { state.focused = -1; scene.draw(); });
  container.querySelector(".task-list")?.addEventListener("click", (event) => {
    const button = event.target.closest("button.task");
    if (button) onSelect(button.dataset.id);
  });
  container.querySelector(".tools").addEventListener("click", (event) => {
    const act = event.target.dataset?.act;
    if (act === "fit") view.fit();
    if (act === "in" || act === "out") view.zoomBy(act === "in" ? 1.25 : 0.8);
  });
  let search = kept.search; // the last "go to task": Go again with the same text goes to its next match
  container.querySelector(".goto").onsubmit = (event) => {
    event.preventDefault();
    const wanted = new FormData(event.target).get("task").trim();
    const note = container.querySelector(".goto-note");
    if (!wanted) { note.textContent = "type a task id or a part of its name"; return; }
    const found = findTasks(tasks, index, wanted);
    if (!found.length) { note.textContent = `no task ${clipped(wanted, 100)} in this graph`; return; }
    const at = search?.wanted === wanted ? (search.at + 1) % found.length : 0;
    search = { wanted, at };
    note.textContent = found.length > 1 ? `${at + 1} of ${found.length} matches (Go again for the next)` : "";
    onSelect(found[at].id, { centre: true });
  };
  filter.onchange = () => handle.dim(chosenStatus());

  const markButtons = () => {
    if (!buttons) return;
    for (const [id, button] of buttons) {
      const i = index.get(id);
      button.classList.toggle("selected", i === state.selected);
      button.classList.toggle("blocking", state.blocking.has(i));
      button.classList.toggle("dim", scene.dimmed(i));
      button.classList.toggle("critical", critical.has(i));
      button.setAttribute("aria-pressed", String(i === state.selected));
    }
  };
  const handle = {
    critical: timed,
    canvas,
    paint(task) {
      const i = index.get(task.id);
      if (i === undefined) return;
      tasks[i] = { ...tasks[i], ...task };
      scene.changed(i);
      const button = buttons?.get(task.id);
      if (button) button.innerHTML = label(tasks[i]);
      if (!offered.has(tasks[i].status ?? "")) offer();
      markButtons();
    },
    mark(selectedId, blockingIds) {
      state.selected = index.get(selectedId) ?? -1;
      state.blocking = new Set(blockingIds.map((id) => index.get(id)).filter((i) => i !== undefined));
      scene.draw();
      markButtons();
    },
    centre(taskId) {
      const i = index.get(taskId);
      if (i !== undefined) view.centre(layout.x[i], layout.y[i]);
    },
    reveal(taskId) { // into view, at a readable zoom, if it is not
      const i = index.get(taskId);
      if (i !== undefined) view.show(layout.x[i], layout.y[i]);
    },
    fit: () => view.fit(),
    released: () => held ?? Promise.resolve(), // see hold
    kept: () => ({ transform: view.kept(), dim: filter.value, typed: typed.value, focus: focusIn(container), search }),
    dim(status) { // null: dim none; "": dim every task that has a status
      state.dim = status;
      scene.changed();
      markButtons();
    },
  };
  canvas.graphView = {
    view: () => view.rect(),
    at(taskId) { // the task's centre in the page (client pixels), or null when it is not in this graph
      const i = index.get(taskId);
      return i === undefined ? null : view.client(layout.x[i], layout.y[i]);
    },
    marks: () => ({
      selected: tasks[state.selected]?.id ?? null,
      blocking: [...state.blocking].map((i) => tasks[i].id),
      dimmed: tasks.filter((_, i) => scene.dimmed(i)).length,
      critical: [...critical].map((i) => tasks[i].id),
    }),
    tasks: tasks.length,
    links: links.length,
    frames: scene.frames,
  };
  markButtons();
  scene.draw(true);
  refocusing = true; // the focus given back after a redraw leaves the view where it was
  refocus(container, kept.focus);
  refocusing = false;
  return handle;
}

/** What has the keyboard focus in the graph's container (a redraw replaces every element in it): a selector
 *  that finds the same control in the new one, with the caret of a text field; null when the focus is elsewhere. */
function focusIn(container) {
  const active = document.activeElement;
  if (!active || active === document.body || !container.contains(active)) return null;
  const where = { caret: active.matches("input") ? [active.selectionStart, active.selectionEnd] : null };
  if (active.matches("button.task")) return { ...where, selector: `button.task[data-id="${CSS.escape(active.dataset.id)}"]` };
  if (active.dataset.act) return { ...where, selector: `[data-act="${active.dataset.act}"]` };
  const named = [".graph-canvas", ".goto input", ".goto button", ".dim-filter"].find((s) => active.matches(s));
  return named ? { ...where, selector: named } : null;
}

/** Gives the focus back to what had it before a redraw (see focusIn), so a live change never throws a keyboard
 *  user out of the graph or a half-typed "go to task". */
function refocus(container, focus) {
  const element = focus && container.querySelector(focus.selector);
  if (!element) return;
  element.focus({ preventScroll: true });
  if (focus.caret) element.setSelectionRange(...focus.caret);
}

/** The tasks `wanted` names, in the graph's (id) order: the task with that id, else the tasks of that exact
 *  name followed by those whose name contains it, case ignored. Plain text, not a pattern. */
function findTasks(tasks, index, wanted) {
  if (index.has(wanted)) return [tasks[index.get(wanted)]];
  const lower = wanted.toLowerCase();
  const exact = [], partial = [];
  for (const task of tasks) {
    const name = (task.name ?? "").toLowerCase();
    if (name === lower) exact.push(task); else if (name.includes(lower)) partial.push(task);
  }
  return exact.concat(partial);
}

/** A task's button in the list (HTML): icon, name (the id when it has none) and status. Name and status are
 *  isolated (<bdi>): a right-to-left name, or one holding a direction override (U+202E), cannot reorder what
 *  follows it. */
function label(task) {
  return `${look(task.status).icon} <bdi>${esc(named(task.name) ?? task.id)}</bdi> · <bdi>${esc(task.status ?? "none")}</bdi>`;
}

/** The name, or null when it has none worth showing (absent, empty or only spaces). */
function named(name) {
  return name?.trim() ? name : null;
}

/** `text` in a <bdi>: laid out apart from the text around it (see label). */
function isolated(text) {
  const element = document.createElement("bdi");
  element.textContent = text;
  return element;
}

// ---- layout, off the main thread -------------------------------------------------------------------------------

let worker = null, asked = 0;
const waiting = new Map();

function layOut(count, from, to) {
  if (!worker) {
    worker = new Worker(new URL("./layout.js", import.meta.url));
    worker.onmessage = ({ data }) => { waiting.get(data.ask)?.resolve(data); waiting.delete(data.ask); };
    worker.onerror = (event) => {
      for (const { reject } of waiting.values()) reject(new Error(`the graph layout failed: ${event.message}`));
      waiting.clear();
      worker = null;
    };
  }
  const ask = ++asked;
  return new Promise((resolve, reject) => {
    waiting.set(ask, { resolve, reject });
    worker.postMessage({ ask, count, from: Int32Array.from(from), to: Int32Array.from(to), box: BOX, gaps: GAPS });
  });
}

// ---- drawing -------------------------------------------------------------------------------------------------

/** What is drawn, and how: the canvas repainted at most once per animation frame, only what is in view; box
 *  labels from READABLE zoom up; outlines and the focus ring at a fixed screen width so they show at any zoom. */
function makeScene(canvas, minimap, tasks, layout, critical, state) {
  const ctx = canvas.getContext("2d", { alpha: false });
  const columns = byRank(tasks.length, layout);
  const wrapped = new Map(); // task index -> its name in lines that fit the box
  const frames = []; // how long each frame took to draw (ms), the last 600
  let transform = { x: 0, y: 0, k: 1 }, pending = 0, overview = null;
  const dimmed = (i) => state.dim !== null && (tasks[i].status ?? "") !== state.dim;

  const frame = () => {
    pending = 0;
    const started = performance.now();
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    const { x: tx, y: ty, k } = transform;
    ctx.setTransform(dpr * k, 0, 0, dpr * k, dpr * tx, dpr * ty);
    const seen = { left: -tx / k, top: -ty / k, right: (width - tx) / k, bottom: (height - ty) / k };
    if (k * (BOX.height + GAPS.node) >= LINKS_PITCH) drawLinks(ctx, layout, critical, seen, k);
    const shown = visible(columns, layout, seen);
    drawBoxes(ctx, tasks, layout, shown, dimmed, k);
    drawOutlines(ctx, layout, state, k);
    if (k >= READABLE) drawLabels(ctx, tasks, layout, shown, dimmed, critical, state.timed, wrapped);
    else if (k >= COMPACT) drawShortLabels(ctx, tasks, layout, shown, dimmed, k);
    drawMinimap(minimap, layout, (overview ??= overviewImage(tasks, layout, dimmed)), seen);
    frames.push(performance.now() - started);
    if (frames.length > 600) frames.shift();
    if (!performance.getEntriesByName("graph-drawn").length) performance.mark("graph-drawn");
  };
  return {
    frames,
    dimmed,
    draw(now = false) {
      if (now) { frame(); return; }
      if (!pending) pending = requestAnimationFrame(frame);
    },
    move(next) {
      transform = next;
      this.draw();
    },
    changed(i = null) { // a task's status changed (or every task's look, with no index): labels and minimap too
      if (i === null) wrapped.clear(); else wrapped.delete(i);
      overview = null;
      this.draw();
    },
    hit(wx, wy) { // the task under a point of the layout, or -1
      const pitch = BOX.width + GAPS.rank;
      const rank = Math.round((wx - BOX.width / 2) / pitch);
      const column = columns[rank];
      if (!column || Math.abs(wx - (rank * pitch + BOX.width / 2)) > BOX.width / 2) return -1;
      const at = firstBelow(column, layout.y, wy - BOX.height / 2);
      const i = column[at];
      return i !== undefined && Math.abs(layout.y[i] - wy) <= BOX.height / 2 ? i : -1;
    },
  };
}

/** Task indices per rank, top to bottom. */
function byRank(count, layout) {
  const columns = [];
  for (let i = 0; i < count; i++) (columns[layout.rank[i]] ??= []).push(i);
  for (const column of columns) column?.sort((a, b) => layout.y[a] - layout.y[b]);
  return columns;
}

/** The first position in `column` (sorted by y) whose task centre is at or below `y`. */
function firstBelow(column, ys, y) {
  let low = 0, high = column.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (ys[column[middle]] < y) low = middle + 1; else high = middle;
  }
  return low;
}

function visible(columns, layout, seen) {
  const shown = [];
  for (const column of columns) {
    if (!column?.length) continue;
    const x = layout.x[column[0]];
    if (x + BOX.width / 2 < seen.left || x - BOX.width / 2 > seen.right) continue;
    for (let at = firstBelow(column, layout.y, seen.top - BOX.height / 2); at < column.length; at++) {
      if (layout.y[column[at]] - BOX.height / 2 > seen.bottom) break;
      shown.push(column[at]);
    }
  }
  return shown;
}

function drawLinks(ctx, layout, critical, seen, k) {
  const { points, starts } = layout;
  const plain = new Path2D(), thick = new Path2D();
  const links = starts.length - 1;
  for (let link = 0; link < links; link++) {
    const first = starts[link], last = starts[link + 1] - 1;
    const x1 = points[2 * first], x2 = points[2 * last];
    if (Math.max(x1, x2) < seen.left || Math.min(x1, x2) > seen.right) continue;
    let top = Infinity, bottom = -Infinity;
    for (let p = first; p <= last; p++) { top = Math.min(top, points[2 * p + 1]); bottom = Math.max(bottom, points[2 * p + 1]); }
    if (bottom < seen.top || top > seen.bottom) continue;
    const path = layout.onPath?.[link] ? thick : plain;
    path.moveTo(x1, points[2 * first + 1]);
    for (let p = first + 1; p <= last; p++) { // a curve that leaves and enters each point horizontally
      const ax = points[2 * p - 2], ay = points[2 * p - 1], bx = points[2 * p], by = points[2 * p + 1];
      const bend = (bx - ax) / 2;
      if (k < CURVES) path.lineTo(bx, by); else path.bezierCurveTo(ax + bend, ay, bx - bend, by, bx, by);
    }
  }
  ctx.strokeStyle = LINK;
  ctx.lineWidth = Math.max(1.2, 0.6 / k);
  ctx.stroke(plain);
  ctx.strokeStyle = "#24292f";
  ctx.lineWidth = Math.max(3, 1.5 / k);
  ctx.stroke(thick);
  if (k < CURVES) return;
  ctx.fillStyle = LINK; // arrowheads into each next task
  const heads = new Path2D();
  for (let link = 0; link < links; link++) {
    const last = starts[link + 1] - 1;
    const x = points[2 * last], y = points[2 * last + 1];
    if (x < seen.left || x > seen.right || y < seen.top || y > seen.bottom) continue;
    heads.moveTo(x, y);
    heads.lineTo(x - 8, y - 4);
    heads.lineTo(x - 8, y + 4);
    heads.closePath();
  }
  ctx.fill(heads);
}

function drawBoxes(ctx, tasks, layout, shown, dimmed, k) {
  const groups = new Map(); // fill and dimming -> boxes: one fill per group, not per box
  for (const i of shown) {
    const key = `${look(tasks[i].status).fill}|${dimmed(i) ? 1 : 0}`;
    (groups.get(key) ?? groups.set(key, new Path2D()).get(key)).rect(
      layout.x[i] - BOX.width / 2, layout.y[i] - BOX.height / 2, BOX.width, BOX.height);
  }
  for (const [key, path] of groups) {
    const [fill, dim] = key.split("|");
    ctx.globalAlpha = dim === "1" ? 0.18 : 1;
    ctx.fillStyle = fill;
    ctx.fill(path);
    if (k * BOX.height > 8) {
      ctx.strokeStyle = "#24292f";
      ctx.lineWidth = 0.6 / Math.min(k, 1);
      ctx.stroke(path);
    }
  }
  ctx.globalAlpha = 1;
}

/** The selection (solid black), the tasks blocking it (dashed black) and the keyboard focus (blue): drawn
 *  around the box on the background, a fixed width on screen, so they show on every fill and at every zoom. */
function drawOutlines(ctx, layout, state, k) {
  const ring = (i, colour, width, dash) => {
    const gap = 5 / k;
    ctx.strokeStyle = colour;
    ctx.lineWidth = width / k;
    ctx.setLineDash(dash.map((d) => d / k));
    ctx.strokeRect(layout.x[i] - BOX.width / 2 - gap, layout.y[i] - BOX.height / 2 - gap,
      BOX.width + 2 * gap, BOX.height + 2 * gap);
  };
  for (const i of state.blocking) ring(i, "#000", 2.5, [6, 3]);
  if (state.selected >= 0) ring(state.selected, "#000", 3.5, []);
  if (state.focused >= 0) ring(state.focused, "#0072B2", 3, [2, 2]);
  ctx.setLineDash([]);
}

/** Status (icon and text) on the first line, the name wrapped on two more (cut with … past that: the full
 *  name is on hover, in the details and in the task list), ★ on the critical path. */
function drawLabels(ctx, tasks, layout, shown, dimmed, critical, timed, wrapped) {
  ctx.font = FONT;
  ctx.textBaseline = "alphabetic";
  for (const i of shown) {
    const task = tasks[i];
    const { text, icon } = look(task.status);
    const left = layout.x[i] - BOX.width / 2 + 7, top = layout.y[i] - BOX.height / 2;
    ctx.globalAlpha = dimmed(i) ? 0.35 : 1;
    ctx.fillStyle = text;
    ctx.font = `600 ${FONT}`;
    ctx.fillText(`${icon} ${task.status ?? "none"}`, left, top + 15);
    if (timed && critical.has(i)) ctx.fillText("★", left + BOX.width - 26, top + 15);
    ctx.font = FONT;
    if (!wrapped.has(i)) wrapped.set(i, wrap(ctx, named(task.name) ?? `(no name) id ${task.id}`, BOX.width - 14, 2));
    wrapped.get(i).forEach((line, n) => ctx.fillText(line, left, top + 31 + 14 * n));
  }
  ctx.globalAlpha = 1;
}

/** Between COMPACT and READABLE zoom: the icon and as much of the name as fits, in 11 px on screen. */
function drawShortLabels(ctx, tasks, layout, shown, dimmed, k) {
  ctx.font = `${11 / k}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  const room = BOX.width - 10 / k;
  for (const i of shown) {
    const task = tasks[i];
    const { text, icon } = look(task.status);
    let line = `${icon} ${clipped(named(task.name) ?? task.id, LABEL_CHARS)}`;
    const width = ctx.measureText(line).width;
    if (width > room) { // cut where it fits, by the measured width, then by a character at a time
      const chars = Array.from(line);
      chars.length = Math.floor(chars.length * room / width);
      while (chars.length && ctx.measureText(`${chars.join("")}…`).width > room) chars.pop();
      line = `${chars.join("")}…`;
    }
    ctx.globalAlpha = dimmed(i) ? 0.35 : 1;
    ctx.fillStyle = text;
    ctx.fillText(line, layout.x[i] - BOX.width / 2 + 5 / k, layout.y[i]);
  }
  ctx.globalAlpha = 1;
  ctx.textBaseline = "alphabetic";
}

function wrap(ctx, text, width, most) {
  const lines = [];
  let line = "";
  const shown = clipped(text, LABEL_CHARS);
  for (const word of shown.split(/(?<=[\s._\-/])/)) { // break after spaces and the separators names use
    if (ctx.measureText(line + word).width <= width || !line) { line += word; continue; }
    lines.push(line.trimEnd());
    line = word;
  }
  lines.push(line.trimEnd());
  const kept = lines.slice(0, most);
  if (lines.length > most || ctx.measureText(kept.at(-1)).width > width) {
    kept[kept.length - 1] = cut(ctx, kept.at(-1), width);
  }
  return kept;
}

/** The longest start of `text` (whole characters: an emoji is never split) that fits `width` with "…" after it,
 *  with the "…"; found by halving, so a few measurements whatever the length. */
function cut(ctx, text, width) {
  const chars = Array.from(text);
  let low = 0, high = chars.length;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (ctx.measureText(`${chars.slice(0, middle).join("")}…`).width <= width) low = middle; else high = middle - 1;
  }
  return `${chars.slice(0, low).join("")}…`;
}

/** The first `most` characters of `text` (whole characters, never half an emoji), with "…" when it had more. */
function clipped(value, most) {
  const text = String(value);
  if (text.length <= most) return text;
  const chars = Array.from(text.slice(0, 2 * most)); // 2 * most code units hold at least `most` characters
  return chars.length > most || text.length > 2 * most ? `${chars.slice(0, most).join("")}…` : text;
}

/** The whole graph, a dot per task in its status colour, drawn once per change (not per frame). */
function overviewImage(tasks, layout, dimmed) {
  const image = document.createElement("canvas");
  image.width = MINIMAP.width;
  image.height = MINIMAP.height;
  const ctx = image.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, image.width, image.height);
  const { scale, dx, dy } = minimapScale(layout);
  for (let i = 0; i < tasks.length; i++) {
    ctx.globalAlpha = dimmed(i) ? 0.2 : 1;
    ctx.fillStyle = look(tasks[i].status).fill;
    ctx.fillRect(dx + (layout.x[i] - BOX.width / 2) * scale, dy + (layout.y[i] - BOX.height / 2) * scale,
      Math.max(1.5, BOX.width * scale), Math.max(1.5, BOX.height * scale));
  }
  return image;
}

function minimapScale(layout) {
  const scale = Math.min((MINIMAP.width - 8) / Math.max(layout.width, 1), (MINIMAP.height - 8) / Math.max(layout.height, 1));
  return { scale, dx: (MINIMAP.width - layout.width * scale) / 2, dy: (MINIMAP.height - layout.height * scale) / 2 };
}

function drawMinimap(minimap, layout, image, seen) {
  minimap.hidden = seen.left <= 0 && seen.top <= 0 && seen.right >= layout.width && seen.bottom >= layout.height;
  if (minimap.hidden) return; // the whole graph is in view
  const ctx = minimap.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const { scale, dx, dy } = minimapScale(layout);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 2;
  ctx.strokeRect(dx + seen.left * scale, dy + seen.top * scale, (seen.right - seen.left) * scale,
    (seen.bottom - seen.top) * scale);
}

// ---- moving -------------------------------------------------------------------------------------------------

/** d3-zoom on the canvas (drag, wheel, pinch, double click), the keys, the buttons and the minimap, all moving
 *  one transform: screen = layout * k + (x, y). The first view fits the graph if its full labels stay drawn
 *  (READABLE zoom or more), else shows its start (the roots) at full size. */
function viewport(canvas, layout, scene, initial) {
  const selection = d3.select(canvas);
  const size = () => ({ width: canvas.clientWidth || 1, height: canvas.clientHeight || 1 });
  const fitScale = () => {
    const { width, height } = size();
    return Math.min(1, width / (layout.width + 80), height / (layout.height + 80));
  };
  let fitted = false;
  const zoom = d3.zoom()
    .on("zoom", (event) => {
      if (event.sourceEvent) fitted = false; // moved by hand
      scene.move(event.transform);
    });
  // Out to half the whole graph (or half of 50%), in to MAX_ZOOM; the first follows the canvas's size, or
  // after the window shrinks "Fit" would be below it and "-" would zoom in from there.
  const limit = () => zoom.scaleExtent([Math.min(fitScale(), 0.5) / 2, MAX_ZOOM]);
  limit();
  selection.call(zoom);
  const set = (transform, fitting = false) => {
    zoom.transform(selection, transform);
    fitted = fitting;
  };
  const at = (k, x, y) => { // layout point (x, y) in the middle of the canvas at zoom k
    const { width, height } = size();
    return d3.zoomIdentity.translate(width / 2, height / 2).scale(k).translate(-x, -y);
  };
  // fit and the zoom keys take the limits at the canvas's size now: the ResizeObserver below runs a frame after
  // a resize, and a key pressed before it would zoom from the old limits ("-" zooming in).
  const fit = () => { limit(); set(at(fitScale(), layout.width / 2, layout.height / 2), true); };
  const start = () => {
    if (fitScale() >= READABLE) { fit(); return; }
    const { width } = size();
    set(at(1, width / 2 - 20, layout.height / 2)); // the left edge of the graph, halfway down, at full size
  };
  // Moved by the keys or buttons: no longer fitted, or a resize seen after it (the ResizeObserver's callback
  // comes a frame late) would fit the graph again and undo the move.
  const zoomBy = (factor) => { limit(); zoom.scaleBy(selection, factor); fitted = false; };
  canvas.addEventListener("keydown", (event) => {
    const step = 80 / d3.zoomTransform(canvas).k;
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (event.key in moves) { zoom.translateBy(selection, ...moves[event.key]); fitted = false; }
    else if (event.key === "+" || event.key === "=") zoomBy(1.25);
    else if (event.key === "-") zoomBy(0.8);
    else if (event.key === "0") fit();
    else return;
    event.preventDefault();
  });
  const minimap = canvas.parentElement.querySelector(".minimap");
  const toMinimapPoint = (event) => {
    if (!(event.buttons & 1)) return;
    const { scale, dx, dy } = minimapScale(layout);
    const rect = minimap.getBoundingClientRect();
    set(at(d3.zoomTransform(canvas).k, (event.clientX - rect.left - dx) / scale, (event.clientY - rect.top - dy) / scale));
  };
  minimap.addEventListener("pointerdown", (event) => { minimap.setPointerCapture(event.pointerId); toMinimapPoint(event); });
  minimap.addEventListener("pointermove", toMinimapPoint);
  new ResizeObserver(() => {
    limit();
    if (fitted) fit(); else scene.draw();
  }).observe(canvas);
  if (initial) set(d3.zoomIdentity.translate(initial.x, initial.y).scale(initial.k)); else start();
  const rect = () => {
    const { x, y, k } = d3.zoomTransform(canvas);
    const { width, height } = size();
    return { x: -x / k, y: -y / k, width: width / k, height: height / k };
  };
  return {
    fit,
    zoomBy,
    centre: (x, y) => set(at(Math.max(d3.zoomTransform(canvas).k, 1), x, y)),
    show(x, y) { // into view if it is not, at a readable zoom
      const seen = rect();
      const inside = x > seen.x && x < seen.x + seen.width && y > seen.y && y < seen.y + seen.height;
      if (!inside || d3.zoomTransform(canvas).k < READABLE) set(at(Math.max(d3.zoomTransform(canvas).k, 1), x, y));
    },
    world(event) { // a pointer event's position in layout units
      const bounds = canvas.getBoundingClientRect();
      return d3.zoomTransform(canvas).invert([event.clientX - bounds.left, event.clientY - bounds.top]);
    },
    client(x, y) {
      const bounds = canvas.getBoundingClientRect();
      const [sx, sy] = d3.zoomTransform(canvas).apply([x, y]);
      return { x: bounds.left + sx, y: bounds.top + sy };
    },
    rect,
    kept() { // null: fit again on a redraw
      if (fitted) return null;
      const { x, y, k } = d3.zoomTransform(canvas);
      return { x, y, k };
    },
  };
}
