// How the graph's canvas is painted, in layout units under the view's transform (zoom k): the links (curved,
// with arrowheads, from CURVES zoom up), the boxes in their status fills, the outlines of the selection, of the
// tasks blocking it and of the keyboard focus, and the labels (full from READABLE zoom, one line from COMPACT).

import { BOX, CURVES, FONT, LABEL_CHARS, LINK, OUTLINE } from "./graph-looks.js";
import { clipped } from "./api.js";
import { named, wrap } from "./graph-text.js";
import { look, statusText } from "./status.js";

/** A canvas's 2D context (null only for a canvas already given another kind of context, which these never are).
 *  @param {HTMLCanvasElement} canvas @param {CanvasRenderingContext2DSettings} [options] */
export function context(canvas, options) {
  const ctx = canvas.getContext("2d", options);
  if (!ctx) throw new Error("this browser draws no 2D canvas");
  return ctx;
}

/** The links in view, the critical path's thick; arrowheads into each next task from CURVES zoom up.
 *  @param {CanvasRenderingContext2D} ctx @param {Layout} layout @param {Seen} seen @param {number} k */
export function drawLinks(ctx, layout, seen, k) {
  const { plain, thick } = linkPaths(layout, seen, k);
  ctx.strokeStyle = LINK;
  ctx.lineWidth = Math.max(1.2, 0.6 / k);
  ctx.stroke(plain);
  ctx.strokeStyle = OUTLINE;
  ctx.lineWidth = Math.max(3, 1.5 / k);
  ctx.stroke(thick);
  if (k < CURVES) return;
  ctx.fillStyle = LINK;
  ctx.fill(arrowheads(layout, seen));
}

/** The links that cross `seen`, in two paths: the plain ones and those on the critical path (layout.onPath).
 *  @param {Layout} layout @param {Seen} seen @param {number} k */
function linkPaths(layout, seen, k) {
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
  return { plain, thick };
}

/** An arrowhead into each next task in view (each link's last point).
 *  @param {Layout} layout @param {Seen} seen */
function arrowheads(layout, seen) {
  const { points, starts } = layout;
  const heads = new Path2D();
  for (let link = 0; link < starts.length - 1; link++) {
    const last = starts[link + 1] - 1;
    const x = points[2 * last], y = points[2 * last + 1];
    if (x < seen.left || x > seen.right || y < seen.top || y > seen.bottom) continue;
    heads.moveTo(x, y);
    heads.lineTo(x - 8, y - 4);
    heads.lineTo(x - 8, y + 4);
    heads.closePath();
  }
  return heads;
}

/** The boxes of the tasks `shown`, one fill per status look and dimming (not per box), edged when big enough.
 *  @param {CanvasRenderingContext2D} ctx @param {GraphTask[]} tasks @param {Layout} layout @param {number[]} shown
 *  @param {(i: number) => boolean} dimmed @param {number} k */
export function drawBoxes(ctx, tasks, layout, shown, dimmed, k) {
  /** @type {Map<string, Path2D>} */
  const groups = new Map(); // fill and dimming -> boxes: one fill per group, not per box
  for (const i of shown) {
    const key = `${look(tasks[i].status).fill}|${dimmed(i) ? 1 : 0}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = new Path2D()));
    group.rect(layout.x[i] - BOX.width / 2, layout.y[i] - BOX.height / 2, BOX.width, BOX.height);
  }
  for (const [key, path] of groups) {
    const [fill, dim] = key.split("|");
    ctx.globalAlpha = dim === "1" ? 0.18 : 1;
    ctx.fillStyle = fill;
    ctx.fill(path);
    if (k * BOX.height > 8) {
      ctx.strokeStyle = OUTLINE;
      ctx.lineWidth = 0.6 / Math.min(k, 1);
      ctx.stroke(path);
    }
  }
  ctx.globalAlpha = 1;
}

/** The selection (solid black), the tasks blocking it (dashed black) and the keyboard focus (blue): drawn
 *  around the box on the background, a fixed width on screen, so they show on every fill and at every zoom.
 *  @param {CanvasRenderingContext2D} ctx @param {Layout} layout @param {Marks} state @param {number} k */
export function drawOutlines(ctx, layout, state, k) {
  /** @param {number} i @param {string} colour @param {number} width @param {number[]} dash */
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
 *  name is on hover, in the details and in the task list), ★ on the critical path.
 *  @param {CanvasRenderingContext2D} ctx @param {GraphTask[]} tasks @param {Layout} layout @param {number[]} shown
 *  @param {(i: number) => boolean} dimmed @param {Set<number>} critical @param {boolean} timed
 *  @param {Map<number, string[]>} wrapped the names already wrapped, by task index (kept between frames) */
export function drawLabels(ctx, tasks, layout, shown, dimmed, critical, timed, wrapped) {
  ctx.font = FONT;
  ctx.textBaseline = "alphabetic";
  for (const i of shown) {
    const task = tasks[i];
    const { text, icon } = look(task.status);
    const left = layout.x[i] - BOX.width / 2 + 7, top = layout.y[i] - BOX.height / 2;
    ctx.globalAlpha = dimmed(i) ? 0.35 : 1;
    ctx.fillStyle = text;
    ctx.font = `600 ${FONT}`;
    ctx.fillText(oneLine(ctx, `${icon} ${statusText(task.status)}`, BOX.width - 34), left, top + 15); // room for ★
    if (timed && critical.has(i)) ctx.fillText("★", left + BOX.width - 26, top + 15);
    ctx.font = FONT;
    let lines = wrapped.get(i);
    if (!lines) wrapped.set(i, (lines = wrap(ctx, named(task.name) ?? `(no name) id ${task.id}`, BOX.width - 14, 2)));
    lines.forEach((line, n) => ctx.fillText(line, left, top + 31 + 14 * n));
  }
  ctx.globalAlpha = 1;
}

/** Between COMPACT and READABLE zoom: the icon and as much of the name as fits, in 11 px on screen.
 *  @param {CanvasRenderingContext2D} ctx @param {GraphTask[]} tasks @param {Layout} layout @param {number[]} shown
 *  @param {(i: number) => boolean} dimmed @param {number} k */
export function drawShortLabels(ctx, tasks, layout, shown, dimmed, k) {
  ctx.font = `${11 / k}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  const room = BOX.width - 10 / k;
  for (const i of shown) {
    const task = tasks[i];
    const { text, icon } = look(task.status);
    ctx.globalAlpha = dimmed(i) ? 0.35 : 1;
    ctx.fillStyle = text;
    ctx.fillText(oneLine(ctx, `${icon} ${clipped(named(task.name) ?? task.id, LABEL_CHARS)}`, room),
      layout.x[i] - BOX.width / 2 + 5 / k, layout.y[i]);
  }
  ctx.globalAlpha = 1;
  ctx.textBaseline = "alphabetic";
}

/** `line`, or as much of it as fits `room` with "…": cut where it fits, by the measured width, then by a
 *  character at a time.
 *  @param {CanvasRenderingContext2D} ctx @param {string} line @param {number} room */
function oneLine(ctx, line, room) {
  const width = ctx.measureText(line).width;
  if (width <= room) return line;
  const chars = Array.from(line);
  chars.length = Math.floor(chars.length * room / width);
  while (chars.length && ctx.measureText(`${chars.join("")}…`).width > room) chars.pop();
  return `${chars.join("")}…`;
}
