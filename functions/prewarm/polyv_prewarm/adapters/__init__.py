"""The ports' implementations: Polyv's HTTP API (and its signing rule), the DynamoDB day ledger
and backlog, and the Secrets Manager credentials."""
