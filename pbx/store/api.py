"""Store queries for HTTP API tokens and webhooks (the HTTP API issue).

A mixin of `pbx.store.Store`: methods here use the store's `_transaction()`
and `_rows()` and return typed rows, so `Store` stays the only SQL writer.
"""

from __future__ import annotations


class ApiQueries:
    """Mixed into Store."""
