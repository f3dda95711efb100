// The task graph's layered layout, run in a Web Worker so the page never freezes while 10,000 tasks are placed:
// ranks by depth (longest path from the roots), the order within each rank by a few barycentre sweeps (links
// that skip ranks pass through placeholder points, so they are ordered and routed like the others), then
// coordinates. Left to right: x grows with the rank.
//
// Message in:  { ask, count, from: Int32Array, to: Int32Array, box: { width, height }, gaps: { rank, node } }
// Message out: { ask, x: Float64Array, y: Float64Array (task centres), rank: Int32Array, width, height,
//                points: Float64Array (x, y pairs of every link's path), starts: Int32Array (link i's pairs are
//                starts[i] .. starts[i + 1]) }

const SWEEPS = 4; // down and up pairs of barycentre sweeps: most of the crossings go in the first few
const PLACEHOLDER_BUDGET = 200_000; // above this many pass-through points, long links are drawn straight
const PLACEHOLDER_HEIGHT = 12; // the room a pass-through point takes in its rank
// Links a tool wrote against the flow (a cycle: the links lead back to a task of the same or an earlier rank)
// run in a lane under the whole graph, and a task linked to itself gets a loop over its box: drawn straight
// from right to left they would hide under the boxes and read as forward links.
const RETURN_LANE = 40;
const RETURN_STEP = 16; // how far right of its task (and left of the next) a returning link turns

/** @typedef {{ width: number, height: number }} Box */
/** @typedef {{ ask: number, count: number, from: Int32Array, to: Int32Array, box: Box,
 *  gaps: { rank: number, node: number } }} Question */
/** A long link's pass-through points (node numbers after the tasks'), one per rank it skips from `firstRank`.
 *  @typedef {{ firstRank: number, nodes: number[] }} Chain */
/** @typedef {{ list: Chain[], byEdge: (Chain | undefined)[], extra: number, segments: [number, number][] }} Chains */
/** Nodes (tasks and pass-through points) by neighbour: `up` in the rank before, `down` in the rank after.
 *  @typedef {number[][]} Neighbours */

/** @param {MessageEvent<Question>} message */
self.onmessage = ({ data }) => {
  const result = layOut(data);
  self.postMessage({ ask: data.ask, ...result },
    [result.x.buffer, result.y.buffer, result.rank.buffer, result.points.buffer, result.starts.buffer]);
};

/** @param {Question} question */
function layOut({ count, from, to, box, gaps }) {
  const rank = ranks(count, from, to);
  const chains = placeholders(count, from, to, rank);
  const total = count + chains.extra;
  const rankOf = new Int32Array(total);
  rankOf.set(rank);
  for (const chain of chains.list) chain.nodes.forEach((node, step) => { rankOf[node] = chain.firstRank + step; });
  const { up, down } = adjacency(total, chains.segments);
  const layers = order(total, rankOf, up, down);
  const y = new Float64Array(total);
  /** @type {number[]} */
  const sizes = []; // each rank's height
  let height = 0;
  for (const layer of layers) { // stacked top down, then centred on the tallest rank
    let at = 0;
    for (const node of layer) {
      const room = node < count ? box.height + gaps.node : PLACEHOLDER_HEIGHT;
      y[node] = at + room / 2;
      at += room;
    }
    sizes.push(at);
    height = Math.max(height, at);
  }
  layers.forEach((layer, r) => { for (const node of layer) y[node] += (height - sizes[r]) / 2; });
  const pitch = box.width + gaps.rank;
  const x = new Float64Array(total);
  for (let node = 0; node < total; node++) x[node] = rankOf[node] * pitch + box.width / 2;
  const returning = from.some((a, edge) => rank[to[edge]] <= rank[a] && a !== to[edge]);
  const lanes = { loop: box.height / 2 + gaps.node / 2, back: height + RETURN_LANE / 2 };
  const { points, starts } = paths(count, from, to, chains, x, y, box, rank, lanes);
  return { x: x.slice(0, count), y: y.slice(0, count), rank, width: layers.length * pitch - gaps.rank,
    height: height + (returning ? RETURN_LANE : 0), points, starts };
}

/** Longest path from the roots (Kahn's order); tasks on a cycle are placed after what precedes them. A root
 *  that only feeds later ranks moves right, next to its first next task (shorter links).
 *  @param {number} count @param {Int32Array} from @param {Int32Array} to */
function ranks(count, from, to) {
  const rank = new Int32Array(count);
  const waiting = new Int32Array(count);
  const outs = lists(count, from, to);
  for (let edge = 0; edge < to.length; edge++) waiting[to[edge]]++;
  /** @type {number[]} */
  const queue = [];
  for (let node = 0; node < count; node++) if (!waiting[node]) queue.push(node);
  const placed = new Uint8Array(count);
  let head = 0;
  for (let next = 0; head < count; next++) {
    if (head === queue.length) { // a cycle: take the first task not placed yet
      while (placed[next]) next++;
      queue.push(next);
      waiting[next] = 0;
    }
    while (head < queue.length) {
      const node = queue[head++];
      placed[node] = 1;
      for (const after of outs[node]) {
        if (placed[after]) continue;
        rank[after] = Math.max(rank[after], rank[node] + 1);
        if (--waiting[after] === 0) queue.push(after);
      }
    }
  }
  const ins = new Int32Array(count);
  for (let edge = 0; edge < to.length; edge++) ins[to[edge]]++;
  for (let node = 0; node < count; node++) {
    if (ins[node] || !outs[node].length) continue;
    rank[node] = Math.max(0, Math.min(...outs[node].map((after) => rank[after])) - 1);
  }
  return rank;
}

/** Each task's next tasks (a task linked to itself left out). @param {number} count @param {Int32Array} from
 *  @param {Int32Array} to */
function lists(count, from, to) {
  const outs = Array.from({ length: count }, () => /** @type {number[]} */ ([]));
  for (let edge = 0; edge < from.length; edge++) if (from[edge] !== to[edge]) outs[from[edge]].push(to[edge]);
  return outs;
}

/** A pass-through point in every rank a link skips (within PLACEHOLDER_BUDGET), and the links between
 *  neighbouring ranks that the ordering sees.
 *  @param {number} count @param {Int32Array} from @param {Int32Array} to @param {Int32Array} rank @returns {Chains} */
function placeholders(count, from, to, rank) {
  let needed = 0;
  for (let edge = 0; edge < from.length; edge++) needed += Math.max(0, rank[to[edge]] - rank[from[edge]] - 1);
  /** @type {(Chain | undefined)[]} */
  const list = [];
  /** @type {[number, number][]} */
  const segments = [];
  let extra = 0;
  for (let edge = 0; edge < from.length; edge++) {
    const a = from[edge], b = to[edge], skipped = rank[b] - rank[a] - 1;
    if (skipped <= 0 || needed > PLACEHOLDER_BUDGET) {
      if (rank[b] === rank[a] + 1) segments.push([a, b]);
      continue;
    }
    const nodes = Array.from({ length: skipped }, () => count + extra++);
    list[edge] = { firstRank: rank[a] + 1, nodes };
    [a, ...nodes, b].reduce((before, node) => { segments.push([before, node]); return node; });
  }
  return { list: list.filter((chain) => chain !== undefined), byEdge: list, extra, segments };
}

/** @param {number} total @param {[number, number][]} segments @returns {{ up: Neighbours, down: Neighbours }} */
function adjacency(total, segments) {
  const up = Array.from({ length: total }, () => /** @type {number[]} */ ([]));
  const down = Array.from({ length: total }, () => /** @type {number[]} */ ([]));
  for (const [a, b] of segments) { down[a].push(b); up[b].push(a); }
  return { up, down };
}

/** Each rank's nodes top to bottom: first as found from the roots, then sorted by the mean position of
 *  their neighbours in the rank before (downward sweeps) or after (upward), SWEEPS times each way.
 *  @param {number} total @param {Int32Array} rankOf @param {Neighbours} up @param {Neighbours} down */
function order(total, rankOf, up, down) {
  let last = 0;
  for (let node = 0; node < total; node++) last = Math.max(last, rankOf[node]);
  const layers = Array.from({ length: last + 1 }, () => /** @type {number[]} */ ([]));
  const seen = new Uint8Array(total);
  const visit = (/** @type {number} */ start) => { // depth first from each root: related tasks start next to each other
    const stack = [start];
    while (stack.length) {
      const node = /** @type {number} */ (stack.pop());
      if (seen[node]) continue;
      seen[node] = 1;
      layers[rankOf[node]].push(node);
      for (let i = down[node].length - 1; i >= 0; i--) if (!seen[down[node][i]]) stack.push(down[node][i]);
    }
  };
  for (let node = 0; node < total; node++) if (!up[node].length) visit(node);
  for (let node = 0; node < total; node++) visit(node);
  const position = new Float64Array(total);
  const number = (/** @type {number[]} */ layer) => layer.forEach((node, index) => { position[node] = index; });
  layers.forEach(number);
  /** @param {number[]} layer @param {Neighbours} neighbours */
  const sweep = (layer, neighbours) => {
    const keys = new Map(layer.map((node) => {
      const around = neighbours[node];
      if (!around.length) return [node, position[node]];
      let sum = 0;
      for (const other of around) sum += position[other];
      return [node, sum / around.length];
    }));
    const key = (/** @type {number} */ node) => /** @type {number} */ (keys.get(node));
    layer.sort((a, b) => key(a) - key(b) || position[a] - position[b]);
    number(layer);
  };
  for (let round = 0; round < SWEEPS; round++) {
    for (let r = 1; r < layers.length; r++) sweep(layers[r], up);
    for (let r = layers.length - 2; r >= 0; r--) sweep(layers[r], down);
  }
  return layers;
}

/** Every link as points: out of the right side of its task, through its pass-through points, into the left
 *  side of its next task.
 *  @param {number} count @param {Int32Array} from @param {Int32Array} to @param {Chains} chains
 *  @param {Float64Array} x @param {Float64Array} y @param {Box} box @param {Int32Array} rank
 *  @param {{ loop: number, back: number }} lanes */
function paths(count, from, to, chains, x, y, box, rank, lanes) {
  const starts = new Int32Array(from.length + 1);
  /** @type {number[]} */
  const points = [];
  for (let edge = 0; edge < from.length; edge++) {
    starts[edge] = points.length / 2;
    const a = from[edge], b = to[edge];
    points.push(x[a] + box.width / 2, y[a]);
    for (const node of chains.byEdge[edge]?.nodes ?? []) points.push(x[node], y[node]);
    if (rank[b] <= rank[a]) { // against the flow: over its own box, or through the lane under the graph
      const lane = a === b ? y[a] - lanes.loop : lanes.back;
      points.push(x[a] + box.width / 2 + RETURN_STEP, lane, x[b] - box.width / 2 - RETURN_STEP, lane);
    }
    points.push(x[b] - box.width / 2, y[b]);
  }
  starts[from.length] = points.length / 2;
  return { points: Float64Array.from(points), starts };
}
