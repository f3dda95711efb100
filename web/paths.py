"""Where the front ends are served, for the code that must know it without importing them (the access log's
redaction, which is set up before the settings are checked: importing a front end imports FastAPI, whose
telemetry module reads OTEL_PROPAGATORS at import and raises on a misspelled one)."""

GRAPHQL_PATH = "/graphql"
