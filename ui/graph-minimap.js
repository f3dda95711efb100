// The minimap (bottom right of the graph): the whole graph, a dot per task in its status colour, and a frame
// around the part in view; shown only while part of the graph is out of view.

import { BOX, MINIMAP } from "./graph-looks.js";
import { context } from "./graph-paint.js";
import { look } from "./status.js";

/** The whole graph, a dot per task in its status colour, drawn once per change (not per frame).
 *  @param {GraphTask[]} tasks @param {Layout} layout @param {(i: number) => boolean} dimmed */
export function overviewImage(tasks, layout, dimmed) {
  const image = document.createElement("canvas");
  image.width = MINIMAP.width;
  image.height = MINIMAP.height;
  const ctx = context(image);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, image.width, image.height);
  const { scale, dx, dy } = minimapScale(layout);
  for (let i = 0; i < tasks.length; i++) {
    ctx.globalAlpha = dimmed(i) ? 0.2 : 1;
    ctx.fillStyle = look(tasks[i].status).fill;
    ctx.fillRect(dx + (layout.x[i] - BOX.width / 2) * scale, dy + (layout.y[i] - BOX.height / 2) * scale,
      Math.max(1.5, BOX.width * scale), Math.max(1.5, BOX.height * scale));
  }
  return image;
}

/** How the layout maps onto the minimap: screen = layout * scale + (dx, dy), the graph centred.
 *  @param {Layout} layout */
export function minimapScale(layout) {
  const scale = Math.min((MINIMAP.width - 8) / Math.max(layout.width, 1), (MINIMAP.height - 8) / Math.max(layout.height, 1));
  return { scale, dx: (MINIMAP.width - layout.width * scale) / 2, dy: (MINIMAP.height - layout.height * scale) / 2 };
}

/** The overview `image` with a frame around `seen` (the part of the layout in view), or the minimap hidden when
 *  the whole graph is in view.
 *  @param {HTMLCanvasElement} minimap @param {Layout} layout @param {HTMLCanvasElement} image @param {Seen} seen */
export function drawMinimap(minimap, layout, image, seen) {
  minimap.hidden = seen.left <= 0 && seen.top <= 0 && seen.right >= layout.width && seen.bottom >= layout.height;
  if (minimap.hidden) return; // the whole graph is in view
  const ctx = context(minimap);
  ctx.drawImage(image, 0, 0);
  const { scale, dx, dy } = minimapScale(layout);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 2;
  ctx.strokeRect(dx + seen.left * scale, dy + seen.top * scale, (seen.right - seen.left) * scale,
    (seen.bottom - seen.top) * scale);
}
