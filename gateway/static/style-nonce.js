// Loaded first by the pages whose vendored libraries write <style> elements as they run (GraphiQL's dialogs,
// ReDoc's styled-components and its bundled CSS). Their policy accepts a <style> element only with this answer's
// nonce, which the page's <meta name="csp-nonce"> holds; the libraries cannot all be told it (some create their
// elements before any option is read), so every <style> element made by document.createElement gets it here.
// Only scripts make elements that way, and only the gateway's own scripts run (script-src 'self'): markup parsed
// from data (a task name through innerHTML) never passes here, so a <style> in stored data stays refused.
"use strict";

(() => {
  const nonce = document.querySelector('meta[name="csp-nonce"]')?.nonce;
  if (!nonce) return;
  const createElement = document.createElement;
  document.createElement = function createElementWithNonce(...args) {
    const element = createElement.apply(this, args);
    if (element instanceof HTMLStyleElement) element.setAttribute("nonce", nonce);
    return element;
  };
})();
