"""Schema migration for trunks, outbound routes, DIDs and ring groups (trunks issue).

Appended to pbx.store.schema.MIGRATIONS in a fixed slot, so features built
side by side never fight over one list. Until its feature lands this holds
no table; once released, never edit it: add a new migration instead.
"""

MIGRATION = "CREATE TABLE IF NOT EXISTS _placeholder_trunks (id INTEGER PRIMARY KEY)"
