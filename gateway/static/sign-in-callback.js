// /auth/callback (gateway/sign-in.html): finishes the sign-in the provider sent the browser back from, then goes
// back to the page that started it; shows what went wrong otherwise. The code and state leave the address bar at
// once, so that neither is kept in the history.
"use strict";

(async () => {
  const query = new URLSearchParams(location.search);
  history.replaceState(null, "", location.pathname);
  try {
    location.replace(await trackingSignIn.finish(query));
  } catch (error) {
    document.getElementById("sign-in-status").hidden = true;
    const shown = document.getElementById("sign-in-error");
    shown.textContent = `Not signed in: ${error.message}`;
    shown.hidden = false;
  }
})();
