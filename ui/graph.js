// A job's task graph drawn on a canvas (up to 10,000 tasks stay smooth): laid out left to right in a Web Worker
// (graph-layout-client.js), moved with d3-zoom (drag, wheel, pinch) or the keys (arrows, + and -, 0 to fit),
// with a minimap, "go to task", a status filter that dims the other tasks, and, up to LIST_LIMIT tasks, a list
// of the tasks as buttons (the keyboard's and screen readers' way to each task). This module is the view: it
// builds the controls, wires them to the scene (graph-scene.js: what is drawn) and the viewport
// (graph-viewport.js: what is in view), and answers for the graph (its handle and `canvas.graphView`).

import { esc } from "./api.js";
import { element } from "./dom.js";
import { focusIn, goToTask, hoverTip, pointerHold, refocus, statusFilter, taskList } from "./graph-controls.js";
import { layOut } from "./graph-layout-client.js";
import { MINIMAP } from "./graph-looks.js";
import { makeScene } from "./graph-scene.js";
import { label } from "./graph-text.js";
import { viewport } from "./graph-viewport.js";

const LIST_LIMIT = 300; // up to this many tasks each is a Tab stop (Enter selects it); above, "go to task" reaches them
/** @type {Kept} */
const NOTHING_KEPT = { transform: null, dim: "", typed: "", focus: null, search: null };

/** Draws `job` ({tasks, edges, criticalPath}) into `container`, where `before` (the last handle, on a redraw)
 *  left the view and the filter; resolves to the graph's handle once laid out and drawn:
 *  { critical, paint(task), mark(selectedId, blockingIds), centre(taskId), reveal(taskId), fit(), dim(status),
 *  kept(), released() (resolves once no pointer is held on it), canvas }.
 *  `canvas.graphView` answers what is on screen (for tests and the bench): view(), at(taskId), marks().
 *  @param {HTMLElement} container @param {GraphJob} job @param {OnSelect} onSelect
 *  @param {GraphHandle | null} [before] @returns {Promise<GraphHandle>} */
export async function drawGraph(container, job, onSelect, before = null) {
  performance.mark("graph-fetched");
  const graph = indexed(job);
  const { tasks, links } = graph;
  const layout = await layOut(tasks.length, links.map((e) => graph.at(e.from)), links.map((e) => graph.at(e.to)));
  performance.mark("graph-laid-out");
  // Read once laid out, and once the pointer held on the last graph is released: a redraw replaces the canvas,
  // which would end a drag half way and undo what moved while the layout ran.
  await before?.released();
  const kept = before?.kept() ?? NOTHING_KEPT;
  const critical = onCriticalPath(job, graph);
  layout.onPath = links.map((edge) => critical.has(graph.at(edge.from)) && critical.has(graph.at(edge.to)));
  const listed = tasks.length <= LIST_LIMIT;
  container.innerHTML = markup(tasks, listed);
  const parts = partsOf(container);
  const filter = statusFilter(parts.filter, tasks, kept.dim);
  /** @type {GraphState} */
  const state = { selected: -1, blocking: new Set(), focused: -1, dim: filter.chosen(), timed: graph.timed };
  const scene = makeScene(parts.canvas, parts.minimap, tasks, layout, critical, state);
  const view = viewport(parts.canvas, parts.minimap, layout, scene, kept.transform);
  parts.typed.value = kept.typed;
  /** @type {Drawn} */
  const drawn = { container, graph, layout, critical, state, scene, view, parts, onSelect, refocusing: false,
    buttons: listed ? taskButtons(container) : null };
  const pointer = pointerHold([parts.canvas, parts.minimap]);
  const goTo = wire(drawn, kept.search);
  const handle = graphHandle(drawn, filter, pointer.released, goTo.search);
  parts.filter.onchange = () => handle.dim(filter.chosen());
  parts.canvas.graphView = graphView(drawn);
  markButtons(drawn);
  scene.draw(true);
  drawn.refocusing = true; // the focus given back after a redraw leaves the view where it was
  refocus(container, kept.focus);
  drawn.refocusing = false;
  return handle;
}

/** Clicks on the canvas, the hover tip, the list of tasks, the tool buttons and "go to task", each wired to the
 *  scene and the viewport; returns "go to task" (its last search is kept by a redraw).
 *  @param {Drawn} drawn @param {Search | null} search the last search before a redraw */
function wire(drawn, search) {
  const { graph, layout, state, scene, view, parts, onSelect } = drawn;
  const { tasks, index } = graph;
  parts.canvas.addEventListener("click", (event) => {
    const hit = scene.hit(...view.world(event));
    if (hit >= 0) onSelect(tasks[hit].id);
  });
  hoverTip(parts.canvas, parts.tip, tasks, (event) => scene.hit(...view.world(event)));
  taskList(drawn.container.querySelector(".task-list"), {
    focus(id) {
      state.focused = (id === undefined ? undefined : index.get(id)) ?? -1;
      if (state.focused >= 0 && !drawn.refocusing) view.show(layout.x[state.focused], layout.y[state.focused]);
      scene.draw();
    },
    blur() { state.focused = -1; scene.draw(); },
    select: (id) => onSelect(id),
  });
  parts.tools.addEventListener("click", (event) => {
    const act = /** @type {HTMLElement} */ (event.target).dataset?.act;
    if (act === "fit") view.fit();
    if (act === "in" || act === "out") view.zoomBy(act === "in" ? 1.25 : 0.8);
  });
  return goToTask(parts.goto, parts.note, tasks, index, search, onSelect);
}

/** What drawGraph resolves to: the graph's answers to the job page (paint a task, mark the selection, move to
 *  a task, dim) and what a redraw keeps of it.
 *  @param {Drawn} drawn @param {ReturnType<typeof statusFilter>} filter @param {() => Promise<void>} released
 *  @param {() => Search | null} search @returns {GraphHandle} */
function graphHandle(drawn, filter, released, search) {
  const { container, graph, layout, state, scene, view, parts, buttons } = drawn;
  const { tasks, index } = graph;
  return {
    critical: graph.timed,
    canvas: parts.canvas,
    paint(task) {
      const i = index.get(task.id);
      if (i === undefined) return;
      tasks[i] = { ...tasks[i], ...task };
      scene.changed(i);
      const button = buttons?.get(task.id);
      if (button) button.innerHTML = label(tasks[i]);
      filter.repainted(tasks[i]);
      markButtons(drawn);
    },
    mark(selectedId, blockingIds) {
      state.selected = index.get(selectedId) ?? -1;
      state.blocking = graph.indices(blockingIds);
      scene.draw();
      markButtons(drawn);
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
    released,
    kept: () => ({ transform: view.kept(), dim: parts.filter.value, typed: parts.typed.value, focus: focusIn(container),
      search: search() }),
    dim(status) { // null: dim none; "": dim every task that has a status
      state.dim = status;
      scene.changed();
      markButtons(drawn);
    },
  };
}

/** The list's buttons say what the canvas shows: selected, blocking, dimmed, on the critical path.
 *  @param {Drawn} drawn */
function markButtons({ buttons, graph, state, scene, critical }) {
  if (!buttons) return;
  for (const [id, button] of buttons) {
    const i = graph.at(id);
    button.classList.toggle("selected", i === state.selected);
    button.classList.toggle("blocking", state.blocking.has(i));
    button.classList.toggle("dim", scene.dimmed(i));
    button.classList.toggle("critical", critical.has(i));
    button.setAttribute("aria-pressed", String(i === state.selected));
  }
}

/** The job's tasks (a copy: repaints replace them), each task's position in them, and the links between two of
 *  its tasks (a neighbourhood's edges may lead out of it).
 *  @param {GraphJob} job @returns {Graph} */
function indexed(job) {
  const tasks = job.tasks.slice();
  const index = new Map(tasks.map((task, i) => [task.id, i]));
  /** The position of a task known to be in the graph. @param {string} id */
  const at = (id) => /** @type {number} */ (index.get(id));
  return {
    tasks,
    index,
    at,
    links: job.edges.filter((edge) => index.has(edge.from) && index.has(edge.to)),
    timed: tasks.some((task) => task.startTime),
    /** The positions of the tasks of `ids` that are in the graph. @param {string[]} ids */
    indices: (ids) => new Set(ids.flatMap((id) => (index.has(id) ? [at(id)] : []))),
  };
}

/** The positions of the tasks on the critical path: none before any task has a start time (every chain would
 *  be 0 long). @param {GraphJob} job @param {Graph} graph */
function onCriticalPath(job, graph) {
  return graph.timed ? graph.indices(job.criticalPath.map((task) => task.id)) : new Set();
}

/** The graph's controls, canvas, minimap and tip, and (up to LIST_LIMIT tasks) the list of tasks.
 *  @param {GraphTask[]} tasks @param {boolean} listed */
function markup(tasks, listed) {
  return `<div class="tools">
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
}

/** The elements of `markup` the view wires. @param {HTMLElement} container @returns {GraphParts} */
function partsOf(container) {
  return {
    canvas: /** @type {GraphCanvas} */ (element(container, ".graph-canvas", HTMLCanvasElement)),
    minimap: element(container, ".minimap", HTMLCanvasElement),
    tip: element(container, ".tip", HTMLDivElement),
    tools: element(container, ".tools", HTMLDivElement),
    goto: element(container, ".goto", HTMLFormElement),
    typed: element(container, ".goto input", HTMLInputElement),
    note: element(container, ".goto-note", HTMLSpanElement),
    filter: element(container, ".dim-filter", HTMLSelectElement),
  };
}

/** The list's buttons by task id. @param {HTMLElement} container @returns {Map<string, HTMLButtonElement>} */
function taskButtons(container) {
  const buttons = /** @type {NodeListOf<HTMLButtonElement>} */ (container.querySelectorAll("button.task"));
  return new Map([...buttons].map((button) => [button.dataset.id ?? "", button]));
}

/** What is on screen, for tests and the bench: the view, where a task is drawn, what is marked.
 *  @param {Drawn} drawn @returns {GraphView} */
function graphView({ graph, layout, state, scene, view, critical }) {
  const { tasks, index } = graph;
  return {
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
    links: graph.links.length,
    frames: scene.frames,
  };
}
