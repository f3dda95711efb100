// A job's timeline: each task with a start time as a bar from its start to its finish (to now while it has
// none, so a running task's bar grows), one row per task, grouped by stage (depth from the roots: one more than
// its deepest previous task), the critical path marked ★. The time axis zooms (wheel over the axis, Ctrl+wheel
// anywhere, + and - keys, buttons) and pans (arrow keys, buttons); only the rows in sight are drawn, so a job
// of thousands of tasks scrolls smoothly. Tasks without a start time are listed below, as such.

import { esc } from "./api.js";
import { closest, element } from "./dom.js";
import { look, statusText } from "./status.js";

const ROW = 20, LABEL = 230, RIGHT = 12, OVERSCAN = 10, TICK_GAP = 110, UNTIMED_LISTED = 200;
const GROW_MS = 1000; // how often a running task's bar is drawn again, to now
const ZOOM = 1.5; // one step of + / - / the wheel
const DAY = 86_400_000;
const STEPS = [1, 2, 5, 10, 15, 30].map((s) => s * 1000).concat([1, 2, 5, 10, 15, 30].map((m) => m * 60_000),
  [1, 2, 3, 6, 12].map((h) => h * 3_600_000), [1, 2, 7, 14, 30, 91, 182, 365].map((d) => d * DAY));

/** @type {WeakMap<HTMLElement, Timeline>} */
const shown = new WeakMap(); // container -> its timeline, so a live redraw keeps the zoom, the scroll and the selection

/** Draws `job` ({tasks (with startTime, finishTime), edges, criticalPath}) into `container`; clicking a bar
 *  calls onSelect(taskId). Drawn again (after an event), it keeps the time window the user zoomed to.
 *  @param {HTMLElement} container @param {GraphJob} job @param {OnSelect} onSelect */
export function drawTimeline(container, job, onSelect) {
  let timeline = shown.get(container);
  if (!timeline || !timeline.root.isConnected || !container.contains(timeline.root)) {
    timeline = createTimeline(container, onSelect);
    shown.set(container, timeline);
  }
  timeline.update(job);
  return timeline;
}

/** Marks task `taskId` as selected on the timeline in `container` (if it shows one); `reveal` scrolls to it.
 *  @param {HTMLElement} container @param {string} taskId */
export function markTimeline(container, taskId, reveal = false) {
  const timeline = shown.get(container);
  if (timeline && timeline.root.isConnected) timeline.mark(taskId, reveal);
}

/** The timeline's markup in `container`, its controls wired; `update(job)` draws a job into it.
 *  @param {HTMLElement} container @param {OnSelect} onSelect @returns {Timeline} */
function createTimeline(container, onSelect) {
  container.innerHTML = `<div class="timeline-tools tools" role="group" aria-label="time axis">
      <button type="button" data-act="in" title="zoom in (+)">+</button>
      <button type="button" data-act="out" title="zoom out (-)">−</button>
      <button type="button" data-act="left" title="earlier (←)">←</button>
      <button type="button" data-act="right" title="later (→)">→</button>
      <button type="button" data-act="fit" title="the whole job (0)">Fit</button>
      <span class="note" id="timeline-span"></span></div>
    <svg class="timeline axis" id="timeline-axis" height="22" aria-label="time axis: the wheel zooms"></svg>
    <div class="timeline-rows" id="timeline-rows" tabindex="0" aria-label="tasks by stage in time (+ - 0 ← →)">
      <div class="timeline-space"><svg class="timeline" role="img" aria-label="timeline of the job's tasks"></svg>
      </div></div><div id="untimed"></div>`;
  const root = element(container, ".timeline-rows", HTMLElement);
  const space = element(root, ".timeline-space", HTMLElement), svg = element(space, "svg", SVGSVGElement);
  const axis = element(container, "#timeline-axis", SVGSVGElement);
  const tools = element(container, ".timeline-tools", HTMLElement);
  const span = element(container, "#timeline-span", HTMLElement);
  /** @type {{ rows: TimelineRow[], critical: Set<string>, first: number, last: number, from: number, to: number,
   *  zoomed: boolean, selected: string | null, running: boolean, timer: ReturnType<typeof setInterval> | undefined }} */
  const state = { rows: [], critical: new Set(), first: 0, last: 1, from: 0, to: 1, zoomed: false, selected: null,
    running: false, timer: undefined };

  const width = () => Math.max(LABEL + 100, root.clientWidth);
  /** @param {number} time */
  const x = (time) => LABEL + (width() - LABEL - RIGHT) * (time - state.from) / (state.to - state.from);
  /** @param {number} px */
  const timeAt = (px) => state.from + (px - LABEL) * (state.to - state.from) / (width() - LABEL - RIGHT);

  const draw = () => {
    const now = Date.now();
    const w = width();
    space.style.height = `${state.rows.length * ROW + 4}px`;
    const top = Math.max(0, Math.floor(root.scrollTop / ROW) - OVERSCAN);
    const bottom = Math.min(state.rows.length, Math.ceil((root.scrollTop + root.clientHeight) / ROW) + OVERSCAN);
    const ticks = tickTimes(state.from, state.to, w - LABEL - RIGHT);
    const parts = ticks.map((time) => `<line class="tick" x1="${x(time)}" x2="${x(time)}" y1="${top * ROW}"
      y2="${bottom * ROW}"/>`);
    parts.push(`<line class="now" x1="${x(now)}" x2="${x(now)}" y1="${top * ROW}" y2="${bottom * ROW}"/>`);
    for (let index = top; index < bottom; index++) parts.push(drawRow(state.rows[index], index * ROW, now));
    svg.setAttribute("width", String(w));
    svg.setAttribute("height", String(state.rows.length * ROW + 4));
    svg.innerHTML = parts.join("");
    axis.setAttribute("width", String(w));
    const dated = crossesDays(state.from, state.to);
    axis.innerHTML = ticks.map((time) => `<line class="tick" x1="${x(time)}" x2="${x(time)}" y1="16" y2="22"/>
      <text class="tick" x="${x(time)}" y="12" text-anchor="middle">${esc(tickLabel(time, ticks, dated))}</text>`)
      .join("") + `<text class="tick" x="4" y="12">UTC${dated ? "" : `, ${day(state.from)}`}</text>`;
    span.textContent = `${day(state.from)} ${clock(state.from)} → ` +
      `${day(state.to)} ${clock(state.to)} UTC (${duration(state.to - state.from)} across)`;
  };

  /** @param {TimelineRow} row @param {number} y @param {number} now */
  const drawRow = (row, y, now) => {
    if ("stage" in row) {
      return `<text class="stage" x="0" y="${y + 15}">Stage ${row.stage}</text>
        <line class="stage" x1="0" x2="${width()}" y1="${y + 19}" y2="${y + 19}"/>`;
    }
    const { task } = row;
    const { fill, icon } = look(task.status);
    const end = Math.max(row.start, row.finish ?? now);
    const left = Math.max(LABEL - 4, x(row.start)), right = Math.min(width() + 4, x(end));
    const critical = state.critical.has(task.id);
    const name = task.name ?? `task ${task.id}`;
    const label = `${critical ? "★ " : ""}${icon} ${name.length > 28 ? name.slice(0, 27) + "…" : name}`;
    const classes = `bar${critical ? " critical" : ""}${task.id === state.selected ? " selected" : ""}`;
    const bar = right < LABEL - 4 || left > width() ? "" // outside the window: only its label
      : `<rect x="${left}" y="${y + 3}" width="${Math.max(2, right - left)}" height="${ROW - 6}" fill="${fill}"/>`;
    return `<g class="${classes}" data-id="${esc(task.id)}"><title>${esc(`${name} · ${statusText(task.status)} · ` +
      `${task.startTime} → ${task.finishTime ?? `running, ${duration(now - row.start)} so far`}`)}</title>
      <text x="8" y="${y + 14}">${esc(label)}</text>${bar}</g>`;
  };

  /** The time window [from, to], kept within a second and a few times the job's span.
   *  @param {number} from @param {number} to */
  const show = (from, to, zoomed = true) => {
    const span = Math.min(Math.max(to - from, 1000), 4 * (state.last - state.first) + DAY);
    const middle = (from + to) / 2;
    state.from = middle - span / 2;
    state.to = middle + span / 2;
    state.zoomed = zoomed;
    draw();
  };
  /** @param {number} factor */
  const zoom = (factor, at = (state.from + state.to) / 2) =>
    show(at - (at - state.from) * factor, at + (state.to - at) * factor);
  /** @param {number} share of the window */
  const pan = (share) => {
    const by = (state.to - state.from) * share;
    show(state.from + by, state.to + by);
  };
  const fit = () => show(state.first, state.last, false);
  /** @type {Record<string, () => void>} */
  const act = { in: () => zoom(1 / ZOOM), out: () => zoom(ZOOM), left: () => pan(-0.2), right: () => pan(0.2), fit };

  tools.onclick = (event) => act[closest(event, "[data-act]")?.dataset.act ?? ""]?.();
  /** @param {WheelEvent} event */
  const wheel = (event) => {
    event.preventDefault();
    const box = root.getBoundingClientRect();
    const at = timeAt(event.clientX - box.left);
    zoom(event.deltaY < 0 ? 1 / ZOOM : ZOOM, Math.max(state.from, Math.min(state.to, at)));
  };
  axis.addEventListener("wheel", wheel, { passive: false }); // over the axis the wheel zooms, over the rows it scrolls
  root.addEventListener("wheel", (event) => { if (event.ctrlKey || event.metaKey) wheel(event); }, { passive: false });
  /** @type {Record<string, () => void>} */
  const keys = { "+": act.in, "=": act.in, "-": act.out, "_": act.out, "0": act.fit, ArrowLeft: act.left,
    ArrowRight: act.right };
  /** @param {KeyboardEvent} event */
  const onKey = (event) => {
    if (!keys[event.key] || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    keys[event.key]();
  };
  root.addEventListener("keydown", onKey); // on the rows, and on the tools after a click on one of them
  tools.addEventListener("keydown", onKey);
  let frame = 0;
  root.addEventListener("scroll", () => { // only the rows in sight are drawn: draw the new ones once a frame
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); });
  });
  svg.onclick = (event) => {
    const bar = closest(event, ".bar");
    if (bar?.dataset.id !== undefined) onSelect(bar.dataset.id);
  };
  const untimedList = element(container, "#untimed", HTMLElement);
  untimedList.onclick = (event) => {
    const link = closest(event, "a[data-task]");
    if (link?.dataset.task === undefined) return;
    event.preventDefault();
    onSelect(link.dataset.task);
  };

  return {
    root,
    update(job) {
      const now = Date.now();
      /** @type {GraphTask[]} */
      const timed = [];
      /** @type {GraphTask[]} */
      const untimed = [];
      for (const task of job.tasks) (task.startTime ? timed : untimed).push(task);
      const depth = stages(job);
      /** @param {GraphTask} task */
      const stageOf = (task) => depth.get(task.id) ?? 0;
      /** @type {TaskRow[]} */
      const rows = timed.map((task) => ({ task, start: Date.parse(task.startTime ?? ""),
        finish: task.finishTime ? Date.parse(task.finishTime) : null }));
      rows.sort((a, b) => stageOf(a.task) - stageOf(b.task) || a.start - b.start || Number(a.task.id) - Number(b.task.id));
      state.rows = [];
      /** @type {number | null} */
      let stage = null;
      for (const row of rows) { // a heading row before each stage's tasks
        if (stageOf(row.task) !== stage) state.rows.push({ stage: (stage = stageOf(row.task)) });
        state.rows.push(row);
      }
      state.critical = new Set((job.criticalPath ?? []).map((task) => task.id));
      state.running = rows.some((row) => row.finish === null);
      if (rows.length) {
        state.first = rows.reduce((first, row) => Math.min(first, row.start), Infinity);
        state.last = rows.reduce((last, row) => Math.max(last, row.start, row.finish ?? now), state.first + 1000);
      }
      showUntimed(untimedList, untimed, rows.length);
      if (!rows.length) {
        root.hidden = tools.hidden = true;
        axis.toggleAttribute("hidden", true);
        return;
      }
      root.hidden = tools.hidden = false;
      axis.toggleAttribute("hidden", false);
      if (state.zoomed) draw();
      else fit();
      clearInterval(state.timer);
      state.timer = state.running ? setInterval(() => { // a running task's bar grows to now
        if (!root.isConnected) { clearInterval(state.timer); return; }
        if (!state.zoomed) state.last = Math.max(state.last, Date.now());
        if (!state.zoomed) fit(); else draw();
      }, GROW_MS) : undefined;
    },
    mark(taskId, reveal) {
      state.selected = taskId;
      const index = state.rows.findIndex((row) => "task" in row && row.task.id === taskId);
      if (reveal && index >= 0 && (index * ROW < root.scrollTop || (index + 1) * ROW > root.scrollTop + root.clientHeight)) {
        root.scrollTop = Math.max(0, index * ROW - root.clientHeight / 2);
      }
      draw();
    },
  };
}

/** The tasks without a start time: they have no place on the time axis, so they are listed (the first
 *  UNTIMED_LISTED of them by id), each a link to its details.
 *  @param {HTMLElement} target @param {GraphTask[]} untimed @param {number} timedCount */
function showUntimed(target, untimed, timedCount) {
  if (!untimed.length) { target.innerHTML = ""; return; }
  const sorted = untimed.slice().sort((a, b) => Number(a.id) - Number(b.id));
  const items = sorted.slice(0, UNTIMED_LISTED).map((task) => `<li><a href="#" data-task="${esc(task.id)}">` +
    `${esc(task.name ?? `task ${task.id}`)}</a> <small>${esc(task.status === null ? "no status" : statusText(task.status))}</small></li>`).join("");
  const more = untimed.length > UNTIMED_LISTED ? `<li>and ${untimed.length - UNTIMED_LISTED} more</li>` : "";
  const what = `${untimed.length} task${untimed.length > 1 ? "s" : ""} without a start time`;
  target.innerHTML = timedCount
    ? `<details class="untimed"><summary>${what} (not on the time axis)</summary><ul>${items}${more}</ul></details>`
    : `<p class="note">No task of this job has a start time yet: nothing to place in time.</p>
       <details class="untimed"><summary>${what}</summary><ul>${items}${more}</ul></details>`;
}

/** Tick times on whole steps (1 s … 1 year, UTC) about TICK_GAP pixels apart across `widthPx`.
 *  @param {number} from @param {number} to @param {number} widthPx */
function tickTimes(from, to, widthPx) {
  const wanted = (to - from) / Math.max(1, widthPx / TICK_GAP);
  const step = STEPS.find((ms) => ms >= wanted) ?? STEPS[STEPS.length - 1];
  const ticks = [];
  for (let time = Math.ceil(from / step) * step; time <= to; time += step) ticks.push(time);
  return ticks;
}

/** @param {number} from @param {number} to */
function crossesDays(from, to) {
  return day(from) !== day(to);
}

/** A tick's label in UTC: the time of day, to the second when the ticks are less than a minute apart; with
 *  the date when the window crosses days (whole days: the date alone).
 *  @param {number} time @param {number[]} ticks @param {boolean} dated */
function tickLabel(time, ticks, dated) {
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1000;
  if (step >= DAY) return day(time);
  const hours = step < 60_000 ? clock(time) : clock(time).slice(0, 5);
  return dated ? `${day(time).slice(5)} ${hours}` : hours;
}

const day = (/** @type {number} */ time) => new Date(time).toISOString().slice(0, 10);
const clock = (/** @type {number} */ time) => new Date(time).toISOString().slice(11, 19);

/** A duration in words: seconds, minutes, hours or days. @param {number} ms */
function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 2 * 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

/** Each task's stage: 0 without a previous task in the job, else one more than its deepest previous task.
 *  @param {GraphJob} job */
function stages(job) {
  const depth = new Map(job.tasks.map((task) => [task.id, 0]));
  const nexts = new Map(job.tasks.map((task) => [task.id, /** @type {string[]} */ ([])]));
  const waiting = new Map(job.tasks.map((task) => [task.id, 0]));
  for (const { from, to } of job.edges) {
    nexts.get(from)?.push(to);
    waiting.set(to, (waiting.get(to) ?? 0) + 1);
  }
  const ready = job.tasks.filter((task) => waiting.get(task.id) === 0).map((task) => task.id);
  for (let id = ready.pop(); id !== undefined; id = ready.pop()) {
    for (const next of nexts.get(id) ?? []) {
      depth.set(next, Math.max(depth.get(next) ?? 0, (depth.get(id) ?? 0) + 1));
      const left = (waiting.get(next) ?? 0) - 1;
      waiting.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  return depth; // tasks on a cycle keep the depth reached so far
}
