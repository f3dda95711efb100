// A job's timeline: each task with a start time as a bar from its start to its finish (to now while it has
// none), one row per task, grouped by stage (depth from the roots: one more than its deepest previous task).

import { esc } from "./api.js";
import { look } from "./status.js";

const ROW = 20, WIDTH = 900, LABEL = 220, STAGE_GAP = 18;

/** Draws `job` ({tasks (with startTime, finishTime), edges}) into `container`; clicking a bar calls
 *  onSelect(taskId). */
export function drawTimeline(container, job, onSelect) {
  const timed = job.tasks.filter((task) => task.startTime);
  const untimed = job.tasks.length - timed.length;
  if (!timed.length) {
    container.innerHTML = `<p class="note">No task of this job has a start time yet: nothing to place in time.</p>`;
    return;
  }
  const depth = stages(job);
  const now = Date.now();
  const start = (task) => Date.parse(task.startTime);
  const end = (task) => Math.max(start(task), task.finishTime ? Date.parse(task.finishTime) : now);
  const first = Math.min(...timed.map(start)), last = Math.max(...timed.map(end), first + 1000);
  const x = (time) => LABEL + (WIDTH - LABEL - 10) * (time - first) / (last - first);
  timed.sort((a, b) => depth.get(a.id) - depth.get(b.id) || start(a) - start(b) || a.id - b.id);
  let y = 30, stage = null;
  const parts = [];
  for (const task of timed) {
    if (depth.get(task.id) !== stage) {
      stage = depth.get(task.id);
      y += STAGE_GAP;
      parts.push(`<text class="stage" x="0" y="${y - 5}">Stage ${stage}</text>
        <line class="stage" x1="0" x2="${WIDTH}" y1="${y - 2}" y2="${y - 2}"/>`);
    }
    const { fill, icon } = look(task.status);
    const left = x(start(task)), width = Math.max(2, x(end(task)) - left);
    const name = task.name ?? `task ${task.id}`;
    parts.push(`<g class="bar" data-id="${esc(task.id)}"><title>${esc(`${name} · ${task.status ?? "none"} · ` +
      `${task.startTime} → ${task.finishTime ?? "running"}`)}</title>
      <text x="8" y="${y + 14}">${esc(icon)} ${esc(name.length > 28 ? name.slice(0, 27) + "…" : name)}</text>
      <rect x="${left}" y="${y + 3}" width="${width}" height="${ROW - 6}" fill="${fill}"/></g>`);
    y += ROW;
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((share) => {
    const time = first + share * (last - first), at = x(time);
    return `<line class="tick" x1="${at}" x2="${at}" y1="18" y2="${y}"/>
      <text class="tick" x="${at}" y="12" text-anchor="middle">${esc(tickLabel(time, last - first))}</text>`;
  });
  container.innerHTML = `<p class="note">Times in UTC, ${esc(new Date(first).toISOString().slice(0, 10))}.
    ${untimed ? `${untimed} task${untimed > 1 ? "s" : ""} without a start time not shown.` : ""}</p>
    <svg class="timeline" width="${WIDTH}" height="${y + 10}" role="img" aria-label="timeline of the job's tasks">
    ${ticks.join("")}${parts.join("")}</svg>`;
  container.querySelector("svg").onclick = (event) => {
    const bar = event.target.closest(".bar");
    if (bar) onSelect(bar.dataset.id);
  };
}

/** A time on the axis, in UTC: the time of day within a day's span, the date and minute over longer ones. */
function tickLabel(time, spanMs) {
  const iso = new Date(time).toISOString();
  return spanMs < 86_400_000 ? iso.slice(11, 19) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

/** Each task's stage: 0 without a previous task in the job, else one more than its deepest previous task. */
function stages(job) {
  const depth = new Map(job.tasks.map((task) => [task.id, 0]));
  const nexts = new Map(job.tasks.map((task) => [task.id, []]));
  const waiting = new Map(job.tasks.map((task) => [task.id, 0]));
  for (const { from, to } of job.edges) {
    nexts.get(from)?.push(to);
    waiting.set(to, (waiting.get(to) ?? 0) + 1);
  }
  const ready = job.tasks.filter((task) => waiting.get(task.id) === 0).map((task) => task.id);
  while (ready.length) {
    const id = ready.pop();
    for (const next of nexts.get(id) ?? []) {
      depth.set(next, Math.max(depth.get(next), depth.get(id) + 1));
      waiting.set(next, waiting.get(next) - 1);
      if (waiting.get(next) === 0) ready.push(next);
    }
  }
  return depth; // tasks on a cycle keep the depth reached so far
}
