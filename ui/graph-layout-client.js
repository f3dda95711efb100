// The task graph's layout, asked of a Web Worker (graph-layout-worker.js) so the page never freezes while
// 10,000 tasks are placed: one worker for the page, each answer matched to its question by a number.

import { BOX, GAPS } from "./graph-looks.js";

/** @type {Worker | null} */
let worker = null;
let asked = 0;
/** @type {Map<number, { resolve: (layout: Layout) => void, reject: (error: Error) => void }>} */
const waiting = new Map();

/** The layout of `count` tasks linked from[i] -> to[i] (task indices), worked out off the main thread.
 *  @param {number} count @param {number[]} from @param {number[]} to @returns {Promise<Layout>} */
export function layOut(count, from, to) {
  const ask = ++asked;
  const layouts = started();
  return new Promise((resolve, reject) => {
    waiting.set(ask, { resolve, reject });
    layouts.postMessage({ ask, count, from: Int32Array.from(from), to: Int32Array.from(to), box: BOX, gaps: GAPS });
  });
}

/** The page's worker, started on first use and again after it failed (every question waiting is refused). */
function started() {
  if (worker) return worker;
  const layouts = new Worker(new URL("./graph-layout-worker.js", import.meta.url));
  layouts.onmessage = ({ data }) => { waiting.get(data.ask)?.resolve(data); waiting.delete(data.ask); };
  layouts.onerror = (event) => {
    for (const { reject } of waiting.values()) reject(new Error(`the graph layout failed: ${event.message}`));
    waiting.clear();
    worker = null;
  };
  worker = layouts;
  return layouts;
}
