"""Schema migration for HTTP API tokens and webhooks (the HTTP API issue).

Appended to pbx.store.schema.MIGRATIONS in a fixed slot, so features built
side by side never fight over one list. Once released, never edit it: add a
new migration instead.

`api_tokens` keeps only the SHA-256 of each bearer token (a token is 256 bits
of randomness, so a plain hash is enough: there is nothing to brute-force,
unlike a password). `webhooks.secret` is kept in clear because it keys the
HMAC-SHA256 signature of every delivery. `cdrs_call_id` lets the API find the
stored CDR of a call that just ended.
"""

MIGRATION = """
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    last_used REAL
);
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE INDEX cdrs_call_id ON cdrs (call_id)
"""
