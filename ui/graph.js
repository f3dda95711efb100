// A job's task graph as SVG: laid out left to right by dagre, moved with the mouse (drag, wheel) or the keys
// (arrows, + and -, 0 to fit), with "go to task" and a status filter that dims the other tasks.

import { esc } from "./api.js";
import { look } from "./status.js";

const BOX = { width: 200, height: 28 };
const LABEL_CHARS = 27; // what fits in a box beside the critical-path star (the full name is on hover)
const TIDY_LIMIT = 300; // up to this many tasks, dagre's network-simplex ranking (tidier, slower than longest-path)

/** Draws `job` ({tasks, edges, criticalPath}) into `container`, where `before` (a redraw: the last handle)
 *  left the view and the filter; returns the graph's handle:
 *  { critical, paint(task), mark(selectedId, blockingIds), centre(taskId), fit(), dim(status), kept() }. */
export function drawGraph(container, job, onSelect, before = null) {
  const kept = before?.kept() ?? { box: null, dim: "" };
  const timed = job.tasks.some((task) => task.startTime);
  const critical = new Set(timed ? job.criticalPath.map((task) => task.id) : []);
  const layout = new dagre.graphlib.Graph();
  const ranker = job.tasks.length <= TIDY_LIMIT ? "network-simplex" : "longest-path";
  layout.setGraph({ rankdir: "LR", nodesep: 12, ranksep: 40, ranker });
  layout.setDefaultEdgeLabel(() => ({}));
  for (const task of job.tasks) layout.setNode(task.id, { ...BOX });
  for (const edge of job.edges) layout.setEdge(edge.from, edge.to);
  performance.mark("graph-fetched");
  dagre.layout(layout, { disableOptimalOrderHeuristic: true }); // its crossing-minimisation sweeps took seconds
  performance.mark("graph-laid-out");
  const size = layout.graph();
  const edges = job.edges.map((edge) => {
    const points = layout.edge(edge.from, edge.to).points.map((p) => `${p.x},${p.y}`).join(" L");
    const onPath = critical.has(edge.from) && critical.has(edge.to);
    return `<path d="M${points}"${onPath ? ' class="critical"' : ""}/>`;
  });
  // Up to TIDY_LIMIT tasks each box is a Tab stop (Enter selects it); above, "go to task" reaches them.
  const focusable = job.tasks.length <= TIDY_LIMIT ? ' tabindex="0" role="button"' : "";
  const nodes = job.tasks.map((task) => {
    const { x, y } = layout.node(task.id);
    return `<g class="task${critical.has(task.id) ? " critical" : ""}" data-id="${esc(task.id)}"${focusable}
      transform="translate(${x - BOX.width / 2},${y - BOX.height / 2})">${boxContent(task)}</g>`;
  });
  container.innerHTML = `<div class="tools">
      <button type="button" data-act="fit" title="fit the whole graph (key 0)">Fit</button>
      <button type="button" data-act="in" title="zoom in (key +)">+</button>
      <button type="button" data-act="out" title="zoom out (key -)">−</button>
      <form id="goto"><input name="task" placeholder="go to task (id or name)" aria-label="go to task by id or name">
        <button>Go</button></form>
      <label>Show <select id="dim" aria-label="highlight tasks in status"><option value="">every status</option>
        ${[...new Set(job.tasks.map((t) => t.status ?? ""))].sort().map((s) =>
          `<option value="${esc(s)}">${esc(s || "none")}</option>`).join("")}</select></label>
      <span class="note" id="goto-note"></span></div>
    <svg tabindex="0" aria-label="task graph: drag or use the arrow keys to move, + and - to zoom, 0 to fit">
    <defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="6" markerHeight="6" orient="auto">
    <path d="M0,0 L8,4 L0,8 z" fill="#6e7781" stroke="none"/></marker></defs>${edges.join("")}${nodes.join("")}</svg>`;
  const svg = container.querySelector("svg");
  const view = viewport(svg, { width: size.width || 1, height: size.height || 1 }, kept.box);
  const filter = container.querySelector("#dim");
  if ([...filter.options].some((option) => option.value === kept.dim)) filter.value = kept.dim;
  const tasks = new Map(job.tasks.map((task) => [task.id, task]));
  const boxOf = (taskId) => svg.querySelector(`.task[data-id="${CSS.escape(taskId)}"]`);
  svg.addEventListener("click", (event) => {
    const box = event.target.closest(".task");
    if (box && !view.dragged()) onSelect(box.dataset.id);
  });
  svg.addEventListener("keydown", (event) => {
    const box = event.target.closest?.(".task");
    if (!box || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    event.stopPropagation();
    onSelect(box.dataset.id);
  });
  container.querySelector(".tools").addEventListener("click", (event) => {
    const act = event.target.dataset?.act;
    if (act === "fit") view.fit();
    if (act === "in" || act === "out") view.zoom(act === "in" ? 1.25 : 0.8);
  });
  container.querySelector("#goto").onsubmit = (event) => {
    event.preventDefault();
    const wanted = new FormData(event.target).get("task").trim().toLowerCase();
    const found = tasks.get(wanted) ?? job.tasks.find((task) => (task.name ?? "").toLowerCase().includes(wanted));
    container.querySelector("#goto-note").textContent = found ? "" : `no task ${wanted} in this job`;
    if (found) onSelect(found.id, { centre: true });
  };
  container.querySelector("#dim").onchange = (event) => handle.dim(event.target.value);
  const handle = {
    critical: timed,
    paint(task) {
      tasks.set(task.id, task);
      const box = boxOf(task.id);
      if (box) box.innerHTML = boxContent(task);
      handle.dim(filter.value);
    },
    mark(selectedId, blockingIds) {
      for (const box of svg.querySelectorAll(".task.selected, .task.blocking")) box.classList.remove("selected", "blocking");
      boxOf(selectedId)?.classList.add("selected");
      for (const id of blockingIds) boxOf(id)?.classList.add("blocking");
    },
    centre(taskId) {
      const node = layout.node(taskId);
      if (node) view.centre(node.x, node.y);
    },
    fit: () => view.fit(),
    kept: () => ({ box: view.box(), dim: filter.value }),
    dim(status) {
      for (const box of svg.querySelectorAll(".task")) {
        box.classList.toggle("dim", status !== "" && (tasks.get(box.dataset.id)?.status ?? "") !== status);
      }
    },
  };
  handle.dim(filter.value);
  performance.mark("graph-drawn"); // make bench reads when the first graph was on screen
  return handle;
}

function boxContent(task) {
  const { fill, text, icon } = look(task.status);
  const full = `${task.name ?? "(no name)"} · ${task.status ?? "none"} · id ${task.id}`;
  return `<title>${esc(full)}</title><rect class="halo" x="-4" y="-4" width="${BOX.width + 8}"
    height="${BOX.height + 8}"/><rect class="fill" width="${BOX.width}" height="${BOX.height}" fill="${fill}"/>
    <text x="6" y="18" fill="${text}">${esc(label(task, icon))}</text>
    <text class="star" x="${BOX.width - 16}" y="18" fill="${text}">★</text>`;
}

function label(task, icon) {
  const text = `${icon} ${task.name ?? task.id} · ${task.status ?? "none"}`;
  return text.length > LABEL_CHARS ? text.slice(0, LABEL_CHARS - 1) + "…" : text;
}

/** The SVG's viewBox moved by drag, wheel and keys; the graph is `size` big (layout units). */
function viewport(svg, size, initial) {
  let box = initial ?? { x: 0, y: 0, w: size.width, h: size.height };
  let drag = null, moved = false, fitted = false; // fitted: the whole graph, kept so while the pane resizes
  const apply = (fitting = false) => {
    fitted = fitting;
    svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.w} ${box.h}`);
  };
  const scale = () => box.w / svg.clientWidth; // layout units per screen pixel
  const fit = () => {
    const aspect = svg.clientHeight / svg.clientWidth || 1;
    const w = Math.max(size.width + 40, (size.height + 40) / aspect, svg.clientWidth); // never magnified
    box = { x: (size.width - w) / 2, y: (size.height - w * aspect) / 2, w, h: w * aspect };
    apply(true);
  };
  const zoom = (factor, cx = box.x + box.w / 2, cy = box.y + box.h / 2) => {
    const w = Math.min(Math.max(box.w / factor, 100), Math.max(size.width, size.height) * 4 + 400);
    const f = w / box.w;
    box = { x: cx - (cx - box.x) * f, y: cy - (cy - box.y) * f, w, h: box.h * f };
    apply();
  };
  const centre = (x, y) => {
    if (box.w > 1200) zoom(box.w / 1000); // close enough to read the boxes
    box = { ...box, x: x - box.w / 2, y: y - box.h / 2 };
    apply();
  };
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = svg.getBoundingClientRect();
    zoom(event.deltaY < 0 ? 1.15 : 1 / 1.15, box.x + (event.clientX - rect.left) * scale(),
      box.y + (event.clientY - rect.top) * scale());
  }, { passive: false });
  svg.addEventListener("pointerdown", (event) => { drag = { x: event.clientX, y: event.clientY, box }; moved = false; });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    if (moved) { box = { ...drag.box, x: drag.box.x - dx * scale(), y: drag.box.y - dy * scale() }; apply(); }
  });
  svg.addEventListener("pointerup", () => { drag = null; });
  svg.addEventListener("keydown", (event) => {
    const step = 60 * scale();
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (event.key in moves) { box = { ...box, x: box.x + moves[event.key][0], y: box.y + moves[event.key][1] }; apply(); }
    else if (event.key === "+" || event.key === "=") zoom(1.25);
    else if (event.key === "-") zoom(0.8);
    else if (event.key === "0") fit();
    else return;
    event.preventDefault();
  });
  new ResizeObserver(() => { if (fitted) fit(); }).observe(svg);
  if (initial) apply(); else fit();
  return { fit, zoom, centre, dragged: () => moved, box: () => (fitted ? null : box) }; // null: fit on redraw
}
