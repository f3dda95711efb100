// What the graph's canvas shows, and where: repainted at most once per animation frame, only what is in view
// (found by rank and by halving, never by looking at every task), and the task under a point.

import { BACKGROUND, BOX, COMPACT, GAPS, LINKS_PITCH, READABLE } from "./graph-looks.js";
import { drawMinimap, overviewImage } from "./graph-minimap.js";
import { context, drawBoxes, drawLabels, drawLinks, drawOutlines, drawShortLabels } from "./graph-paint.js";

/** What is drawn, and how: the canvas repainted at most once per animation frame, only what is in view; box
 *  labels from READABLE zoom up; outlines and the focus ring at a fixed screen width so they show at any zoom.
 *  `state` is read at each frame: what is marked, the status not dimmed (null: none dimmed), whether timed.
 *  @param {HTMLCanvasElement} canvas @param {HTMLCanvasElement} minimap @param {GraphTask[]} tasks
 *  @param {Layout} layout @param {Set<number>} critical @param {GraphState} state @returns {Scene} */
export function makeScene(canvas, minimap, tasks, layout, critical, state) {
  const ctx = context(canvas, { alpha: false });
  const columns = byRank(tasks.length, layout);
  /** @type {Map<number, string[]>} */
  const wrapped = new Map(); // task index -> its name in lines that fit the box
  /** @type {number[]} */
  const frames = []; // how long each frame took to draw (ms), the last 600
  let transform = { x: 0, y: 0, k: 1 }, pending = 0;
  /** @type {HTMLCanvasElement | null} */
  let overview = null;
  /** @param {number} i */
  const dimmed = (i) => state.dim !== null && (tasks[i].status ?? "") !== state.dim;

  const frame = () => {
    pending = 0;
    const started = performance.now();
    const seen = clear(canvas, ctx, transform);
    const { k } = transform;
    if (k * (BOX.height + GAPS.node) >= LINKS_PITCH) drawLinks(ctx, layout, seen, k);
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
  /** @type {Scene} */
  const scene = {
    frames,
    dimmed,
    draw(now = false) {
      if (now) { frame(); return; }
      if (!pending) pending = requestAnimationFrame(frame);
    },
    move(next) {
      transform = next;
      scene.draw();
    },
    changed(i = null) { // a task's status changed (or every task's look, with no index): labels and minimap too
      if (i === null) wrapped.clear(); else wrapped.delete(i);
      overview = null;
      scene.draw();
    },
    hit: (wx, wy) => hit(columns, layout, wx, wy),
  };
  return scene;
}

/** The canvas sized to its element (device pixels), filled with the background, and its transform set to draw
 *  in layout units; returns the part of the layout in view.
 *  @param {HTMLCanvasElement} canvas @param {CanvasRenderingContext2D} ctx @param {Transform} transform
 *  @returns {Seen} */
function clear(canvas, ctx, transform) {
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
  return { left: -tx / k, top: -ty / k, right: (width - tx) / k, bottom: (height - ty) / k };
}

/** The task under a point of the layout, or -1.
 *  @param {number[][]} columns @param {Layout} layout @param {number} wx @param {number} wy */
function hit(columns, layout, wx, wy) {
  const pitch = BOX.width + GAPS.rank;
  const rank = Math.round((wx - BOX.width / 2) / pitch);
  const column = columns[rank];
  if (!column || Math.abs(wx - (rank * pitch + BOX.width / 2)) > BOX.width / 2) return -1;
  const at = firstBelow(column, layout.y, wy - BOX.height / 2);
  const i = column[at];
  return i !== undefined && Math.abs(layout.y[i] - wy) <= BOX.height / 2 ? i : -1;
}

/** Task indices per rank, top to bottom (a rank without a task has no column).
 *  @param {number} count @param {Layout} layout */
function byRank(count, layout) {
  /** @type {number[][]} */
  const columns = [];
  for (let i = 0; i < count; i++) (columns[layout.rank[i]] ??= []).push(i);
  for (const column of columns) column?.sort((a, b) => layout.y[a] - layout.y[b]);
  return columns;
}

/** The first position in `column` (sorted by y) whose task centre is at or below `y`.
 *  @param {number[]} column @param {Float64Array} ys @param {number} y */
function firstBelow(column, ys, y) {
  let low = 0, high = column.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (ys[column[middle]] < y) low = middle + 1; else high = middle;
  }
  return low;
}

/** The tasks whose box overlaps `seen`, column by column.
 *  @param {number[][]} columns @param {Layout} layout @param {Seen} seen */
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
