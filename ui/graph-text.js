// What the graph writes of a task: its name bounded (LABEL_CHARS, TIP_CHARS) and cut to fit a box, never half a
// character, and isolated from the text around it. What tools store is text, never markup.

import { clipped, esc } from "./api.js";
import { LABEL_CHARS } from "./graph-looks.js";
import { look, statusText } from "./status.js";

/** A task's button in the list (HTML): icon, name (the id when it has none) and status. Name and status are
 *  isolated (<bdi>): a right-to-left name, or one holding a direction override (U+202E), cannot reorder what
 *  follows it.
 *  @param {GraphTask} task */
export function label(task) {
  return `${look(task.status).icon} <bdi>${esc(named(task.name) ?? task.id)}</bdi> · <bdi>${esc(statusText(task.status))}</bdi>`;
}

/** The name, or null when it has none worth showing (absent, empty or only spaces).
 *  @param {string | null | undefined} name */
export function named(name) {
  return name?.trim() ? name : null;
}

/** `text` in a <bdi>: laid out apart from the text around it (see label).
 *  @param {string} text */
export function isolated(text) {
  const element = document.createElement("bdi");
  element.textContent = text;
  return element;
}

/** `text` in at most `most` lines of at most `width` (as `ctx` measures), broken after spaces and the
 *  separators names use; the last line cut with "…" when the text goes on.
 *  @param {CanvasRenderingContext2D} ctx @param {string} text @param {number} width @param {number} most */
export function wrap(ctx, text, width, most) {
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
  const last = kept[kept.length - 1];
  if (lines.length > most || ctx.measureText(last).width > width) kept[kept.length - 1] = cut(ctx, last, width);
  return kept;
}

/** The longest start of `text` (whole characters: an emoji is never split) that fits `width` with "…" after it,
 *  with the "…"; found by halving, so a few measurements whatever the length.
 *  @param {CanvasRenderingContext2D} ctx @param {string} text @param {number} width */
export function cut(ctx, text, width) {
  const chars = Array.from(text);
  let low = 0, high = chars.length;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (ctx.measureText(`${chars.slice(0, middle).join("")}…`).width <= width) low = middle; else high = middle - 1;
  }
  return `${chars.slice(0, low).join("")}…`;
}
