// How a status looks: a fill from the Okabe-Ito palette (safe for the common colour-vision deficiencies), a
// text colour readable on it, and an icon, so the colour is never the only cue.

import { clipped, esc } from "./api.js";

/** @type {Set<string | null | undefined>} */
let doneStatuses = new Set(); // the gateway's TRACKING_DONE_STATUSES (Query.doneStatuses), read with every page

/** @param {string[]} statuses Query.doneStatuses */
export function setDoneStatuses(statuses) {
  doneStatuses = new Set(statuses);
}

const LOOKS = {
  done: { name: "done", fill: "#009E73", text: "#fff", icon: "✓", meaning: "done" },
  running: { name: "running", fill: "#0072B2", text: "#fff", icon: "▶", meaning: "running" },
  failed: { name: "failed", fill: "#D55E00", text: "#fff", icon: "✗", meaning: "failed" },
  skipped: { name: "skipped", fill: "#BBBBBB", text: "#000", icon: "↷", meaning: "skipped" },
  waiting: { name: "waiting", fill: "#56B4E9", text: "#000", icon: "○", meaning: "not started" },
  other: { name: "other", fill: "#E69F00", text: "#000", icon: "◆", meaning: "other status" },
};

// A chip's colours are a class per look (`look-done`…), its rules written here from LOOKS: the page's
// Content-Security-Policy refuses `style` attributes in markup, while a stylesheet built by script is the
// page's own (constructable stylesheets are not inline styles).
const chipColours = new CSSStyleSheet();
chipColours.replaceSync(Object.values(LOOKS).map(({ name, fill, text }) =>
  `.chip.look-${name} { background: ${fill}; color: ${text}; }`).join("\n"));
document.adoptedStyleSheets = [...document.adoptedStyleSheets, chipColours];

/** { fill, text, icon, meaning } of a status (null: the task has none). SKIPPED stays "skipped" even when the
 *  gateway counts it as done; the other done statuses come from the gateway, never from a list here.
 *  @param {string | null | undefined} status */
export function look(status) {
  if (status === "SKIPPED") return LOOKS.skipped;
  if (doneStatuses.has(status)) return LOOKS.done;
  if (status === "RUNNING") return LOOKS.running;
  if (status === "FAILED" || status === "ERROR") return LOOKS.failed;
  if (hasNone(status) || status === "READY") return LOOKS.waiting;
  return LOOKS.other;
}

/** Characters of a status shown (chips, choices, boxes, tips); a longer one is cut with "…". Statuses are
 *  words (DONE, RUNNING), but a tool may store anything: one of 100,000 characters must not widen the page. */
export const STATUS_CHARS = 40;

/** A status as text, bounded: "none" when the task has none (an empty one included: the "Show" choice and
 *  the filters take it for none too, and a chip of an icon alone said nothing).
 *  @param {string | null | undefined} status */
export function statusText(status) {
  return hasNone(status) ? "none" : clipped(status, STATUS_CHARS);
}

/** @param {string | null | undefined} status @returns {status is null | undefined | ""} */
function hasNone(status) {
  return status === null || status === undefined || status === "";
}

/** A status as a chip (HTML): its look's colours, icon and text, and a count after it (null: none). The status
 *  is isolated (<bdi>): a right-to-left one, or one holding a direction override (U+202E), cannot reorder the
 *  count after it.
 *  @param {string | null | undefined} status @param {number | null} [count] */
export function chip(status, count = null) {
  const { name, icon, meaning } = look(status);
  return `<span class="chip look-${name}" title="${esc(meaning)}">${icon}
    <bdi>${esc(statusText(status))}</bdi>${count === null ? "" : ` ${count}`}</span>`;
}

/** A bar of `shares` ([{ fraction, fill, title }], fractions of 1 side by side), drawn in SVG: its widths and
 *  colours are SVG attributes, which the page's policy allows where `style` attributes are refused.
 *  @param {string} className @param {{ fraction: number, fill?: string, title?: string }[]} shares */
export function shareBar(className, shares) {
  let x = 0;
  const rects = shares.map(({ fraction, fill, title }) => {
    const rect = `<rect x="${100 * x}" width="${100 * fraction}" height="1"${fill ? ` fill="${fill}"` : ""}>${
      title ? `<title>${esc(title)}</title>` : ""}</rect>`;
    x += fraction;
    return rect;
  });
  return `<svg class="${className}" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true">${rects.join("")}</svg>`;
}

/** A chip per status with its count (Job.statusCounts). @param {StatusCount[]} counts */
export function statusChips(counts) {
  return counts.map(({ status, count }) => chip(status, count)).join("");
}
