"""Schema migration for the recordings index (the recording issue).

Appended to pbx.store.schema.MIGRATIONS in a fixed slot, so features built
side by side never fight over one list. Once released, never edit it: add a
new migration instead.

One row per recorded call, inserted when recording starts (`complete` 0) and
finished when the call ends (`complete` 1 with duration, size and SHA-256 of
the file). A row still at 0 when DeskPBX starts belongs to a crash: the
startup check repairs the file's header and sets `repaired`. Times are epoch
seconds; `path` is absolute. The CDR links to a recording by its path
(`cdrs.recording`), which `call_id` also lets one find from the CDR side.
"""

MIGRATION = """
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    call_label TEXT NOT NULL DEFAULT '',
    caller TEXT NOT NULL DEFAULT '',
    callee TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL UNIQUE,
    start REAL NOT NULL,
    duration REAL NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    complete INTEGER NOT NULL DEFAULT 0,
    repaired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recordings_start ON recordings (start);
CREATE INDEX recordings_call_id ON recordings (call_id)
"""
