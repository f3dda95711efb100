"""The built-in live view served at /ui: static files (index.html, app.js, app.css) that use only the public
GraphQL API, like any dashboard. Shipped in the Python package; no build step."""

from pathlib import Path

UI_DIR = Path(__file__).parent
