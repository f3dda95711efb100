// ReDoc (gateway/redoc.html) on the public /openapi.json: it needs no token. ReDoc writes its styles into <style>
// elements as it renders; the page's policy accepts only those carrying this answer's nonce, which ReDoc gives
// every element it writes when told it (the `nonce` option).
"use strict";

Redoc.init("/openapi.json", { nonce: document.querySelector('meta[name="csp-nonce"]').nonce },
  document.getElementById("redoc"));
