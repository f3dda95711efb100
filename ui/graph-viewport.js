// Moving the graph: one d3-zoom transform (screen = layout * k + (x, y)) that the pointer (drag, wheel, pinch,
// double click), the keys (arrows, + and -, 0 to fit), the tool buttons and the minimap all move. d3 is the
// global the page's vendored d3-zoom scripts define (index.html).

import { BOX, GAPS, MAX_ZOOM, READABLE } from "./graph-looks.js";
import { minimapScale } from "./graph-minimap.js";

/** d3-zoom on the canvas (drag, wheel, pinch, double click), the keys, the buttons and the minimap, all moving
 *  one transform: screen = layout * k + (x, y). The first view fits the graph if its full labels stay drawn
 *  (READABLE zoom or more), else shows its start (the roots) at full size; `initial` is the transform a redraw
 *  keeps (null: fit again, or start).
 *  @param {HTMLCanvasElement} canvas @param {HTMLCanvasElement} minimap @param {Layout} layout @param {Scene} scene
 *  @param {Transform | null} initial @returns {Viewport} */
export function viewport(canvas, minimap, layout, scene, initial) {
  const mover = zoomOn(canvas, layout, scene);
  const { at, set } = mover;
  const k = () => d3.zoomTransform(canvas).k;
  movedByKeys(canvas, mover);
  movedByMinimap(canvas, minimap, layout, mover);
  new ResizeObserver(() => {
    mover.limit();
    if (mover.fitted) mover.fit(); else scene.draw();
  }).observe(canvas);
  if (initial) set(d3.zoomIdentity.translate(initial.x, initial.y).scale(initial.k)); else start(mover, layout);
  const rect = () => {
    const { x, y, k } = d3.zoomTransform(canvas);
    const { width, height } = mover.size();
    return { x: -x / k, y: -y / k, width: width / k, height: height / k };
  };
  return {
    fit: mover.fit,
    zoomBy: mover.zoomBy,
    centre: (x, y) => set(at(Math.max(k(), 1), x, y)),
    show(x, y) { // into view if it is not, at a readable zoom
      const seen = rect();
      const inside = x > seen.x && x < seen.x + seen.width && y > seen.y && y < seen.y + seen.height;
      if (!inside || k() < READABLE) set(at(Math.max(k(), 1), x, y));
    },
    world(event) { // a pointer event's position in layout units
      const bounds = canvas.getBoundingClientRect();
      return d3.zoomTransform(canvas).invert([event.clientX - bounds.left, event.clientY - bounds.top]);
    },
    client(x, y) {
      const bounds = canvas.getBoundingClientRect();
      const [sx, sy] = d3.zoomTransform(canvas).apply([x, y]);
      return { x: bounds.left + sx, y: bounds.top + sy };
    },
    rect,
    kept() { // null: fit again on a redraw
      if (mover.fitted) return null;
      const { x, y, k } = d3.zoomTransform(canvas);
      return { x, y, k };
    },
  };
}

/** d3-zoom on the canvas, and the ways to move it that the rest share. `fitted` stays true until the view is
 *  moved (by hand, a key or a button), so that a resize fits the graph again only while it was fitted.
 *  @param {HTMLCanvasElement} canvas @param {Layout} layout @param {Scene} scene */
function zoomOn(canvas, layout, scene) {
  const selection = d3.select(/** @type {Element} */ (canvas)); // d3-zoom's types move an Element
  const size = () => ({ width: canvas.clientWidth || 1, height: canvas.clientHeight || 1 });
  const fitScale = () => {
    const { width, height } = size();
    return Math.min(1, width / (layout.width + 80), height / (layout.height + 80));
  };
  const zoom = d3.zoom()
    .on("zoom", (event) => {
      if (event.sourceEvent) mover.fitted = false; // moved by hand
      scene.move(event.transform);
    });
  const mover = {
    selection,
    zoom,
    size,
    fitScale,
    fitted: false,
    // Out to half the whole graph (or half of 50%), in to MAX_ZOOM; the first follows the canvas's size, or
    // after the window shrinks "Fit" would be below it and "-" would zoom in from there.
    limit: () => { zoom.scaleExtent([Math.min(fitScale(), 0.5) / 2, MAX_ZOOM]); },
    /** @param {import("d3-zoom").ZoomTransform} transform */
    set(transform, fitting = false) {
      zoom.transform(selection, transform);
      mover.fitted = fitting;
    },
    /** Layout point (x, y) in the middle of the canvas at zoom k. @param {number} k @param {number} x @param {number} y */
    at(k, x, y) {
      const { width, height } = size();
      return d3.zoomIdentity.translate(width / 2, height / 2).scale(k).translate(-x, -y);
    },
    // fit and the zoom keys take the limits at the canvas's size now: the ResizeObserver runs a frame after a
    // resize, and a key pressed before it would zoom from the old limits ("-" zooming in).
    fit() { mover.limit(); mover.set(mover.at(fitScale(), layout.width / 2, layout.height / 2), true); },
    // Moved by the keys or buttons: no longer fitted, or a resize seen after it (the ResizeObserver's callback
    // comes a frame late) would fit the graph again and undo the move.
    /** @param {number} factor */
    zoomBy(factor) { mover.limit(); zoom.scaleBy(selection, factor); mover.fitted = false; },
  };
  mover.limit();
  selection.call(zoom);
  return mover;
}

/** The first view: the whole graph if its full labels stay drawn (READABLE zoom or more), else its start at full
 *  size: the left edge, on the roots (`rootsMiddle`). @param {ReturnType<typeof zoomOn>} mover
 *  @param {Layout} layout */
function start(mover, layout) {
  if (mover.fitScale() >= READABLE) { mover.fit(); return; }
  const { width, height } = mover.size();
  mover.set(mover.at(1, width / 2 - 20, rootsMiddle(layout, height)));
}

/** Where the first view is centred, down the layout: on the middle of the first rank's tasks (the roots, centred
 *  on the tallest rank by the layout) when they fit in a view `viewHeight` high, else half a view below the
 *  first of them, which is then the first task in view (halfway down the graph, a tall first rank began out of
 *  sight). @param {Layout} layout @param {number} viewHeight */
function rootsMiddle(layout, viewHeight) {
  let top = Infinity;
  let bottom = -Infinity;
  for (let i = 0; i < layout.rank.length; i++) {
    if (layout.rank[i] !== 0) continue;
    top = Math.min(top, layout.y[i]);
    bottom = Math.max(bottom, layout.y[i]);
  }
  if (top > bottom) return layout.height / 2;
  const margin = BOX.height / 2 + GAPS.node;
  return bottom - top + 2 * margin <= viewHeight ? (top + bottom) / 2 : top - margin + viewHeight / 2;
}

/** With the canvas focused: the arrow keys move the view, + and - zoom, 0 fits.
 *  @param {HTMLCanvasElement} canvas @param {ReturnType<typeof zoomOn>} mover */
function movedByKeys(canvas, mover) {
  canvas.addEventListener("keydown", (event) => {
    const step = 80 / d3.zoomTransform(canvas).k;
    /** @type {Record<string, [number, number]>} */
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (event.key in moves) { mover.zoom.translateBy(mover.selection, ...moves[event.key]); mover.fitted = false; }
    else if (event.key === "+" || event.key === "=") mover.zoomBy(1.25);
    else if (event.key === "-") mover.zoomBy(0.8);
    else if (event.key === "0") mover.fit();
    else return;
    event.preventDefault();
  });
}

/** A click or a drag in the minimap centres the view on that point, at the same zoom.
 *  @param {HTMLCanvasElement} canvas @param {HTMLCanvasElement} minimap @param {Layout} layout
 *  @param {ReturnType<typeof zoomOn>} mover */
function movedByMinimap(canvas, minimap, layout, mover) {
  /** @param {PointerEvent} event */
  const toMinimapPoint = (event) => {
    if (!(event.buttons & 1)) return;
    const { scale, dx, dy } = minimapScale(layout);
    const rect = minimap.getBoundingClientRect();
    mover.set(mover.at(d3.zoomTransform(canvas).k, (event.clientX - rect.left - dx) / scale,
      (event.clientY - rect.top - dy) / scale));
  };
  minimap.addEventListener("pointerdown", (event) => { minimap.setPointerCapture(event.pointerId); toMinimapPoint(event); });
  minimap.addEventListener("pointermove", toMinimapPoint);
}
