// The drill-down: one task's neighbourhood (its ancestors and descendants to a chosen depth) drawn as a graph
// over the job's graph or table, for jobs of any size. It reads only `Task.ancestors`/`Task.descendants`
// (maxDepth), so its cost is the neighbourhood's, not the job's.

import { esc, gql } from "./api.js";
import { element } from "./dom.js";
import { drawGraph } from "./graph.js";
import { NEIGHBOURHOOD } from "./queries.js";

export const DEPTHS = [1, 2, 3, 5, 10];

/** Shows task `taskId`'s neighbourhood in a panel laid over the first column of `host` (the job's grid);
 *  `onSelect(taskId, options)` selects a task of it. Resolves to a handle { mark, paint, centre, close, taskId }
 *  (its panel says so when the task is gone); `onClose` runs when the panel is closed.
 *  @param {HTMLElement} host @param {string} taskId @param {OnSelect} onSelect @param {() => void} onClose
 *  @returns {Promise<Neighbourhood>} */
export async function showNeighbourhood(host, taskId, onSelect, onClose, depth = 2) {
  host.querySelector(".hood")?.remove();
  const panel = document.createElement("section");
  panel.className = "hood graph";
  panel.setAttribute("aria-label", "neighbourhood of a task");
  host.prepend(panel);
  /** @type {GraphHandle | null} */
  let graph = null;
  /** @type {[string, string[]] | null} */
  let marked = null; // the last selection, marked again when another depth is drawn
  let asked = 0; // the last depth asked for wins: an older answer arriving after it is not drawn
  /** @type {Neighbourhood} */
  const handle = {
    taskId,
    mark(selectedId, blockingIds) {
      marked = [selectedId, blockingIds];
      graph?.mark(selectedId, blockingIds);
    },
    paint: (task) => graph?.paint(task),
    centre: (id) => graph?.centre(id),
    close() { panel.remove(); onClose(); },
  };
  /** @param {number} chosen */
  const draw = async (chosen) => {
    const ask = ++asked;
    /** @type {{ task: HoodTask | null }} */
    const { task } = await gql(NEIGHBOURHOOD, { id: taskId, depth: chosen });
    if (!panel.isConnected || ask !== asked) return;
    if (!task) { panel.innerHTML = `<p>Task ${esc(taskId)} no longer exists.</p>`; return; }
    const tasks = new Map([task, ...task.ancestors, ...task.descendants].map((t) => [t.id, t]));
    const edges = [...tasks.values()].flatMap((t) => t.nexts.filter((n) => tasks.has(n.id)).map((n) => ({ from: t.id, to: n.id })));
    panel.innerHTML = `<div class="hood-head"><strong>Neighbourhood of ${esc(task.name ?? task.id)}
      <small>(id ${esc(task.id)})</small></strong>
      <label>depth <select class="hood-depth" aria-label="levels up and down">${DEPTHS.map((d) =>
        `<option${d === chosen ? " selected" : ""}>${d}</option>`).join("")}</select></label>
      <span class="note">${task.ancestors.length} before, ${task.descendants.length} after</span>
      <button type="button" class="hood-close">Close</button></div><div class="hood-graph"></div>`;
    element(panel, ".hood-close", HTMLButtonElement).onclick = () => handle.close();
    const depths = element(panel, ".hood-depth", HTMLSelectElement);
    depths.onchange = () => draw(Number(depths.value)).catch(failed);
    const drawn = await drawGraph(element(panel, ".hood-graph", HTMLElement), { tasks: [...tasks.values()], edges,
      criticalPath: [] }, onSelect);
    if (ask !== asked) return;
    graph = drawn;
    if (marked) graph.mark(...marked);
    graph.reveal(task.id);
  };
  /** @param {Error} error */
  const failed = (error) => { if (!panel.isConnected) return; panel.innerHTML = `<p class="error">No neighbourhood: ${esc(error.message)}</p>
    <button type="button" class="hood-close">Close</button>`; element(panel, ".hood-close", HTMLButtonElement).onclick = () => handle.close(); };
  await draw(depth).catch(failed);
  return handle;
}
