"""The database file: creation with safe permissions, pragmas and migrations.

The file holds HA1 hashes now and trunk passwords later, so it is created
0600 on POSIX before SQLite ever touches it; SQLite gives its -wal and -shm
files the same mode as the database. WAL lets the GUI and `deskpbx` commands
read while `deskpbx serve` writes; busy_timeout makes a concurrent writer wait
instead of failing.

Migrations are an ordered tuple of SQL scripts; `schema_version` records how
many have run, so opening is idempotent and a newer DeskPBX upgrades an older
file in place. Append to MIGRATIONS, never edit a released entry.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
from pathlib import Path

from pbx.store import bans, schema_api, schema_recordings, schema_trunks
from pbx.store.errors import StoreUnavailable

DB_FILENAME = "deskpbx.db"
FILE_MODE = 0o600
BUSY_TIMEOUT_MS = 5000

_V1 = """
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE extensions (
    number TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    record_policy TEXT NOT NULL DEFAULT 'never'
        CHECK (record_policy IN ('always', 'never', 'on_demand')),
    permission TEXT NOT NULL DEFAULT 'national'
        CHECK (permission IN ('internal', 'local', 'national', 'international')),
    created REAL NOT NULL
);
CREATE TABLE bindings (
    extension TEXT NOT NULL REFERENCES extensions(number) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    source_host TEXT NOT NULL,
    source_port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    expires_at REAL NOT NULL,
    q REAL NOT NULL DEFAULT 1.0,
    call_id TEXT NOT NULL DEFAULT '',
    cseq INTEGER NOT NULL DEFAULT 0,
    user_agent TEXT NOT NULL DEFAULT '',
    instance_id TEXT NOT NULL DEFAULT '',
    reachable INTEGER NOT NULL DEFAULT 1,
    last_qualified REAL,
    PRIMARY KEY (extension, contact)
);
CREATE INDEX bindings_expires_at ON bindings (expires_at);
CREATE TABLE cdrs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start REAL NOT NULL,
    answer REAL,
    "end" REAL NOT NULL,
    duration REAL NOT NULL,
    billsec REAL NOT NULL,
    disposition TEXT NOT NULL
        CHECK (disposition IN ('ANSWERED', 'BUSY', 'NO ANSWER', 'FAILED', 'CANCELLED')),
    sip_code INTEGER NOT NULL DEFAULT 0,
    sip_reason TEXT NOT NULL DEFAULT '',
    hangup_side TEXT NOT NULL CHECK (hangup_side IN ('caller', 'callee', 'system')),
    x_headers TEXT NOT NULL DEFAULT '{}',
    recording TEXT,
    media_stats TEXT
);
CREATE INDEX cdrs_start ON cdrs (start);
CREATE INDEX cdrs_caller ON cdrs (caller);
CREATE INDEX cdrs_callee ON cdrs (callee);
"""

MIGRATIONS: tuple[str, ...] = (
    _V1,
    schema_trunks.MIGRATION,
    schema_recordings.MIGRATION,
    schema_api.MIGRATION,
    schema_trunks.ROUTE_RECORDING,
    schema_trunks.TRUNK_SRV,
    schema_trunks.TRUNK_MATCH,
    bans.MIGRATION,
)
SCHEMA_VERSION = len(MIGRATIONS)


def create_private_file(path: Path) -> None:
    """Create `path` (if missing) readable by its owner only; tighten an existing file too."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        os.close(fd)
        if os.name == "posix":
            os.chmod(path, FILE_MODE)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StoreUnavailable(f"cannot create database {path}: {reason}") from exc


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, migrated to SCHEMA_VERSION."""
    create_private_file(path)
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open database {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives a crash of DeskPBX (what matters for CDRs and
        # bindings); only a power cut can lose the last commits, never corrupt the file.
        # FULL would fsync every REGISTER and cap the registrar at disk speed.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreUnavailable(f"cannot use database {path}: {exc}") from exc
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Run the migrations this file has not seen yet, each in its own transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"database schema version {current} is newer than this DeskPBX "
                f"understands ({SCHEMA_VERSION}); upgrade DeskPBX"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    """Split a migration script; executescript() would commit our open transaction."""
    return [part.strip() for part in script.split(";") if part.strip()]


WAL_INDEX_HEADER = 136
"""Bytes of the wal-index header at the start of the -shm file (sqlite.org/walformat.html
section 2.2.1): two copies of a 48-byte header, whose iChange counter and mxFrame move with
every committed transaction, then the checkpoint info."""


class WalIndexWatch:
    """Says cheaply whether any connection may have committed since the last look.

    `PRAGMA data_version` is the exact test, but it starts a read transaction (shared-memory
    locks, system calls) and the extension cache asked it on every REGISTER and INVITE. The
    wal-index header in the -shm file changes with every commit to the database, so an
    unchanged header (a 136-byte read of shared memory) proves nothing was committed and the
    PRAGMA can be skipped; any change, ours included, sends the caller to the PRAGMA. Without
    a readable -shm file (not in WAL mode) every look says "maybe".

    The mapping is safe while the store's own connection is open: SQLite truncates the
    -shm file only when a connection opens it with no other connection attached.
    """

    def __init__(self, db_path: Path) -> None:
        self._map: mmap.mmap | None = None
        self._seen = b""
        try:
            with open(f"{db_path}-shm", "rb") as shm:
                self._map = mmap.mmap(shm.fileno(), WAL_INDEX_HEADER, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # no -shm (rollback journal), too short, no mmap
            self._map = None

    def maybe_changed(self) -> bool:
        """False only when no transaction can have committed since the previous call."""
        if self._map is None:
            return True
        header = self._map[:WAL_INDEX_HEADER]
        if header == self._seen:
            return False
        self._seen = header
        return True

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
