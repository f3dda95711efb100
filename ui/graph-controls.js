// The controls around the graph's canvas, each wired by one function: the status filter ("Show"), "go to task",
// the hover tip, the list of tasks as buttons (the keyboard's and screen readers' way to each task), the pointer
// hold a redraw waits for, and the keyboard focus kept across redraws.

import { clipped, esc } from "./api.js";
import { TIP_CHARS } from "./graph-looks.js";
import { statusText } from "./status.js";
import { isolated, named } from "./graph-text.js";

/** The "Show" filter: offers every status the tasks have had since drawn (a status that appears by a live
 *  repaint joins the choices; the chosen one stays). Every choice but "every status" is "=" and the status
 *  ("=" alone: none), so no status can mean "every".
 *  @param {HTMLSelectElement} select @param {GraphTask[]} tasks @param {string} kept the value chosen before a redraw */
export function statusFilter(select, tasks, kept) {
  /** @type {Set<string>} */
  const offered = new Set();
  const offer = () => {
    const before = offered.size;
    for (const task of tasks) offered.add(task.status ?? "");
    if (offered.size === before && select.options.length) return;
    const chosen = select.value;
    select.innerHTML = `<option value="">every status</option>${[...offered].sort().map((s) =>
      `<option value="=${esc(s)}">${esc(statusText(s || null))}</option>`).join("")}`;
    select.value = chosen;
  };
  offer();
  if ([...select.options].some((option) => option.value === kept)) select.value = kept;
  return {
    /** The status not dimmed: null for "every status" (dim none). */
    chosen: () => (select.value === "" ? null : select.value.slice(1)),
    /** @param {GraphTask} task a task repainted: its status joins the choices if new */
    repainted: (task) => { if (!offered.has(task.status ?? "")) offer(); },
  };
}

/** Watches `elements` for a pointer pressed on them; `released()` resolves once no such pointer is down (at
 *  once when none is): a redraw replaces the canvas, which would end a drag half way.
 *  @param {HTMLElement[]} elements */
export function pointerHold(elements) {
  /** @type {Promise<void> | null} */
  let held = null;
  const kinds = ["pointerup", "pointercancel", "pointermove"];
  const hold = () => {
    held ??= new Promise((resolve) => {
      /** @param {Event} event */
      const release = (event) => {
        if (event.type === "pointermove" && /** @type {PointerEvent} */ (event).buttons) return;
        for (const kind of kinds) window.removeEventListener(kind, release, true);
        held = null;
        resolve();
      };
      for (const kind of kinds) window.addEventListener(kind, release, true);
    });
  };
  for (const element of elements) element.addEventListener("pointerdown", hold);
  return { released: () => held ?? Promise.resolve() };
}

/** The tip under the pointer: the task's name (bounded), status and id, below right of the pointer, or left of
 *  it / above it where it would leave the graph (and scroll it).
 *  @param {HTMLCanvasElement} canvas @param {HTMLElement} tip @param {GraphTask[]} tasks
 *  @param {(event: PointerEvent) => number} hitAt the task under the pointer, or -1 */
export function hoverTip(canvas, tip, tasks, hitAt) {
  canvas.addEventListener("pointermove", (event) => {
    const hit = event.buttons ? -1 : hitAt(event);
    tip.hidden = hit < 0;
    canvas.style.cursor = hit < 0 ? "" : "pointer";
    if (hit < 0) return;
    const task = tasks[hit];
    tip.replaceChildren(isolated(clipped(named(task.name) ?? "(no name)", TIP_CHARS)), " · ",
      isolated(statusText(task.status)), ` · id ${task.id}`);
    const wrap = canvas.getBoundingClientRect();
    const right = event.clientX - wrap.left + 14, below = event.clientY - wrap.top + 14;
    tip.style.left = `${right + tip.offsetWidth > wrap.width ? Math.max(0, right - 28 - tip.offsetWidth) : right}px`;
    tip.style.top = `${below + tip.offsetHeight > wrap.height ? Math.max(0, below - 28 - tip.offsetHeight) : below}px`;
  });
  canvas.addEventListener("pointerleave", () => { tip.hidden = true; });
}

/** The list of tasks as buttons: focusing one rings it on the canvas (and brings it into view, unless the focus
 *  is being given back after a redraw), Enter or a click selects it.
 *  @param {HTMLElement | null} list absent above LIST_LIMIT tasks
 *  @param {{ focus(id: string | undefined): void, blur(): void, select(id: string): void }} on */
export function taskList(list, on) {
  list?.addEventListener("focusin", (event) => on.focus(/** @type {HTMLElement} */ (event.target).dataset.id));
  list?.addEventListener("focusout", () => on.blur());
  list?.addEventListener("click", (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest("button.task");
    if (button instanceof HTMLElement && button.dataset.id !== undefined) on.select(button.dataset.id);
  });
}

/** "Go to task": selects (and centres) the task typed, by id or name; Go again with the same text goes to its
 *  next match. Returns the last search, which a redraw keeps.
 *  @param {HTMLFormElement} form @param {HTMLElement} note @param {GraphTask[]} tasks
 *  @param {Map<string, number>} index @param {Search | null} kept the last search before a redraw
 *  @param {(taskId: string, options: { centre: boolean }) => void} onSelect */
export function goToTask(form, note, tasks, index, kept, onSelect) {
  let search = kept;
  form.onsubmit = (event) => {
    event.preventDefault();
    const wanted = String(new FormData(form).get("task")).trim();
    if (!wanted) { note.textContent = "type a task id or a part of its name"; return; }
    const found = findTasks(tasks, index, wanted);
    if (!found.length) { note.textContent = `no task ${clipped(wanted, 100)} in this graph`; return; }
    const at = search?.wanted === wanted ? (search.at + 1) % found.length : 0;
    search = { wanted, at };
    note.textContent = found.length > 1 ? `${at + 1} of ${found.length} matches (Go again for the next)` : "";
    onSelect(found[at].id, { centre: true });
  };
  return { search: () => search };
}

/** The tasks `wanted` names, in the graph's (id) order: the task with that id, else the tasks of that exact
 *  name followed by those whose name contains it, case ignored. Plain text, not a pattern.
 *  @param {GraphTask[]} tasks @param {Map<string, number>} index @param {string} wanted */
function findTasks(tasks, index, wanted) {
  const byId = index.get(wanted);
  if (byId !== undefined) return [tasks[byId]];
  const lower = wanted.toLowerCase();
  /** @type {GraphTask[]} */
  const exact = [];
  /** @type {GraphTask[]} */
  const partial = [];
  for (const task of tasks) {
    const name = (task.name ?? "").toLowerCase();
    if (name === lower) exact.push(task); else if (name.includes(lower)) partial.push(task);
  }
  return exact.concat(partial);
}

/** What has the keyboard focus in the graph's container (a redraw replaces every element in it): a selector
 *  that finds the same control in the new one, with the caret of a text field; null when the focus is elsewhere.
 *  @param {HTMLElement} container @returns {Focus | null} */
export function focusIn(container) {
  const active = document.activeElement;
  if (!(active instanceof HTMLElement) || active === document.body || !container.contains(active)) return null;
  const where = { caret: active instanceof HTMLInputElement ? caret(active) : null };
  if (active.matches("button.task")) return { ...where, selector: `button.task[data-id="${CSS.escape(active.dataset.id ?? "")}"]` };
  if (active.dataset.act) return { ...where, selector: `[data-act="${active.dataset.act}"]` };
  const named = [".graph-canvas", ".goto input", ".goto button", ".dim-filter"].find((s) => active.matches(s));
  return named ? { ...where, selector: named } : null;
}

/** @param {HTMLInputElement} input @returns {[number, number] | null} */
function caret(input) {
  return input.selectionStart === null || input.selectionEnd === null ? null : [input.selectionStart, input.selectionEnd];
}

/** Gives the focus back to what had it before a redraw (see focusIn), so a live change never throws a keyboard
 *  user out of the graph or a half-typed "go to task".
 *  @param {HTMLElement} container @param {Focus | null} focus */
export function refocus(container, focus) {
  const element = focus && container.querySelector(focus.selector);
  if (!(element instanceof HTMLElement)) return;
  element.focus({ preventScroll: true });
  if (focus?.caret && element instanceof HTMLInputElement) element.setSelectionRange(...focus.caret);
}
