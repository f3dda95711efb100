# `make run` and `make test` install everything they need into .venv from nothing (Python 3.11+ and pip).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs what serving needs (and the embedded mongod); `make test` adds the dev tools
# (linters, mypy, pytest, the client generator) on top, also into a .venv that `make run` made.
SERVING := $(VENV)/.installed-serving
DEV := $(VENV)/.installed-dev

.PHONY: run test lint format bench clean vendor browser docs typecheck-js

$(SERVING): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -e ".[embedded]"
	touch $(SERVING)

$(DEV): $(SERVING)
	$(BIN)/python -m pip install --quiet -e ".[embedded,dev]"
	touch $(DEV)

run: $(SERVING)
	$(BIN)/tracking-gateway serve

# The live view's type check: tsc over its ES modules and their JSDoc types (jsconfig.json; the layout worker in
# a worker's scope, jsconfig.worker.json). `npm ci` installs exactly what package-lock.json pins, from the npm
# registry, into node_modules (git-ignored); nothing of it is served or shipped.
NODE_TOOLS := node_modules/.installed
TSC := node_modules/.bin/tsc
$(NODE_TOOLS): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $(NODE_TOOLS)

typecheck-js: $(NODE_TOOLS)
	$(TSC) -p jsconfig.json
	$(TSC) -p jsconfig.worker.json

# The page tests render in headless Chromium: Debian's package, installed when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The docs site (mkdocs.yml, docs/): `make docs` serves it at http://127.0.0.1:$(DOCS_PORT) while you edit
# (`make docs DOCS_PORT=8001` beside another server); `make test` builds it with --strict into $(SITE)
# (git-ignored), so that a broken link or a page missing from the nav fails.
SITE := site
DOCS_PORT ?= 8000
docs: $(DEV)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

# The suite runs in TEST_WORKERS processes (pytest-xdist), each with a session mongod of its own: most tests wait
# on MongoDB, a browser or a process they started, so two workers keep two cores busy (docs/how-to/develop.md).
# `make test TEST_WORKERS=1` runs it in one process.
TEST_WORKERS ?= 2
test: $(DEV) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory typecheck-js
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(SITE)
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: $(DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The GET rows also measure with wrk (Debian's package), installed when missing.
bench: $(DEV)
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	$(BIN)/python -m pip install --quiet -e ".[embedded,dev,bench]"
	$(BIN)/python -m bench
	$(BIN)/python -m bench.purge 1000000

# Browser assets (GraphiQL, Swagger UI, ReDoc, …) come from the npm registry at the versions in
# gateway/static/vendor/PACKAGES, with their licences, and are committed: the gateway serves them offline.
VENDOR := gateway/static/vendor
vendor:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	grep -v '^#' $(VENDOR)/PACKAGES | while read -r name version files; do \
	  [ -n "$$name" ] || continue; \
	  (cd "$$tmp" && npm pack --silent "$$name@$$version" >/dev/null && mkdir -p "$$name" && \
	   tar -xzf "$$(echo "$$name" | tr -d @ | tr / -)-$$version.tgz" -C "$$name"); \
	  rm -rf "$(VENDOR)/$$name"; mkdir -p "$(VENDOR)/$$name"; \
	  for file in $$files; do cp "$$tmp/$$name/package/$$file" "$(VENDOR)/$$name/"; done; \
	  cp "$$tmp/$$name/package/"LICEN[CS]E* "$(VENDOR)/$$name/" 2>/dev/null || true; \
	  echo "$$name $$version" > "$(VENDOR)/$$name/VERSION"; \
	  if [ "$$name" = redoc ]; then \
	    sed -i 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:image/svg+xml,%3Csvg%2F%3E#' "$(VENDOR)/redoc/redoc.standalone.js"; \
	    echo "patched: the Redocly logo it loads from a CDN is an inline empty image" >> "$(VENDOR)/redoc/VERSION"; \
	  fi; \
	  echo "vendored $$name@$$version"; \
	done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis .import_linter_cache $(SITE) node_modules
