// ReDoc (gateway/redoc.html) on the public /openapi.json: it needs no token. A file of its own, not inline: the
// page's policy runs no inline script.
"use strict";

Redoc.init("/openapi.json", {}, document.getElementById("redoc"));
