// How a status looks: a fill from the Okabe-Ito palette (safe for the common colour-vision deficiencies), a
// text colour readable on it, and an icon, so the colour is never the only cue.

import { esc } from "./api.js";

let doneStatuses = new Set(); // the gateway's TRACKING_DONE_STATUSES (Query.doneStatuses), read with every page

export function setDoneStatuses(statuses) {
  doneStatuses = new Set(statuses);
}

const LOOKS = {
  done: { fill: "#009E73", text: "#fff", icon: "✓", meaning: "done" },
  running: { fill: "#0072B2", text: "#fff", icon: "▶", meaning: "running" },
  failed: { fill: "#D55E00", text: "#fff", icon: "✗", meaning: "failed" },
  skipped: { fill: "#BBBBBB", text: "#000", icon: "↷", meaning: "skipped" },
  waiting: { fill: "#56B4E9", text: "#000", icon: "○", meaning: "not started" },
  other: { fill: "#E69F00", text: "#000", icon: "◆", meaning: "other status" },
};

/** { fill, text, icon, meaning } of a status (null: the task has none). SKIPPED stays "skipped" even when the
 *  gateway counts it as done; the other done statuses come from the gateway, never from a list here. */
export function look(status) {
  if (status === "SKIPPED") return LOOKS.skipped;
  if (doneStatuses.has(status)) return LOOKS.done;
  if (status === "RUNNING") return LOOKS.running;
  if (status === "FAILED" || status === "ERROR") return LOOKS.failed;
  if (status === null || status === undefined || status === "READY") return LOOKS.waiting;
  return LOOKS.other;
}

export function chip(status, count = null) {
  const { fill, text, icon, meaning } = look(status);
  return `<span class="chip" style="background:${fill};color:${text}" title="${esc(meaning)}">${icon}
    ${esc(status ?? "none")}${count === null ? "" : ` ${count}`}</span>`;
}

export function statusChips(counts) {
  return counts.map(({ status, count }) => chip(status, count)).join("");
}
