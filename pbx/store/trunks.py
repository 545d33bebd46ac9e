"""Store queries for trunks, outbound routes, DIDs and ring groups (the trunks-and-routing issue).

A mixin of `pbx.store.Store`: methods here use the store's `_transaction()`
and `_rows()` and return typed rows, so `Store` stays the only SQL writer.
"""

from __future__ import annotations


class TrunkQueries:
    """Mixed into Store."""
