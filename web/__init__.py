"""What both front ends (rest/, graphql_schema/) take from HTTP alike: Accept negotiation, the API tokens, the
request state the app's lifespan hands them, the ETag grammar and the limits on a request's shape. It imports
neither front end nor the composition root (gateway/): the import-linter contracts in pyproject.toml say so."""
