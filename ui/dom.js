// Finding the elements a module's own markup holds, typed: a missing one is a mistake in that markup, said at
// once with its selector, never a `null` that fails later and elsewhere.

/** The element `selector` finds in `root`, checked to be a `kind` (HTMLInputElement, HTMLCanvasElement…).
 *  @template {Element} T @param {ParentNode} root @param {string} selector @param {new () => T} kind @returns {T} */
export function element(root, selector, kind) {
  const found = root.querySelector(selector);
  if (!(found instanceof kind)) throw new Error(`the page has no ${kind.name} ${selector}`);
  return found;
}

/** The element of the page with id `id`, checked to be a `kind`.
 *  @template {Element} T @param {string} id @param {new () => T} kind @returns {T} */
export function byId(id, kind) {
  const found = document.getElementById(id);
  if (!(found instanceof kind)) throw new Error(`the page has no ${kind.name} #${id}`);
  return found;
}

/** The element an event happened on, or the closest one around it, that matches `selector` (null: none), with
 *  its data attributes (an HTML or an SVG element).
 *  @param {Event} event @param {string} selector @returns {HTMLElement | SVGElement | null} */
export function closest(event, selector) {
  const found = event.target instanceof Element ? event.target.closest(selector) : null;
  return found instanceof HTMLElement || found instanceof SVGElement ? found : null;
}
