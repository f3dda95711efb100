// Swagger UI (gateway/swagger-ui.html) on the gateway's own assets. A file of its own, not inline: the page's
// policy runs no inline script.
"use strict";

// "Authorize" and "Logout" keep the token every page of the gateway shares (/static/token.js), instead of
// Swagger UI's own persistAuthorization (localStorage: every tab, and kept after the browser closes).
const sharedToken = () => ({
  statePlugins: {
    auth: {
      wrapActions: {
        authorize: (authorize) => (payload) => {
          const token = payload?.apiKey?.value;
          if (token) trackingToken.set(token);
          return authorize(payload);
        },
        logout: (logout) => (payload) => {
          trackingToken.forget();
          return logout(payload);
        },
      },
    },
  },
});
const ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // no validator badge: it would call validator.swagger.io
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  plugins: [sharedToken],
  onComplete: () => {
    const token = trackingToken.get();
    if (token) ui.preauthorizeApiKey("apiKey", token);
  },
});
