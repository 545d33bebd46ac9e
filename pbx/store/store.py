"""`Store`: the only object in DeskPBX that reads or writes SQL.

One SQLite file (`deskpbx.db` in the data directory) holds settings,
extensions, registrar bindings and CDRs; see `schema.py` for the file itself.
Callers get typed rows (`rows.py`) and typed errors (`errors.py`), never
cursors. Every method is safe to call from any thread (one lock around one
connection), which lets `server.run_in_thread()` build the store in one
thread and use it in the PBX loop.

Extensions store HA1 = H(number:realm:password) for MD5 and SHA-256
(RFC 7616 §3.4.2, RFC 8760) instead of the password; changing the realm would
invalidate them, which is why the realm is set once when the file is created.

Extension lookups are on the hot path of every REGISTER and INVITE (digest
HA1, routing), so `find_extension` answers from an in-memory cache. The cache
is trusted only while `PRAGMA data_version` is unchanged: SQLite changes that
value when another connection commits (a `deskpbx ext add` from the CLI, the
GUI's own Store), and this Store clears the cache itself after its own
extension writes, which do not change it. One PRAGMA costs far less than a
SELECT and building the row.

The Store is composed of mixins, one module per group of tables: the registrar
bindings (`bindings.py`), CDRs (`cdrs.py`), recordings, trunks and routes, API
tokens and webhooks. This module keeps what they share (the connection, its
lock and transactions, the write-behind flusher thread) plus settings and
extensions.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils

from pbx.sip.digest import compute_ha1
from pbx.store.api import ApiQueries
from pbx.store.bans import BanQueries
from pbx.store.bindings import BindingQueries
from pbx.store.cdrs import CDR_BATCH_S, CdrQueries, insert_cdrs
from pbx.store.errors import DuplicateExtension, InvalidValue, StoreError, UnknownExtension
from pbx.store.location import WRITE_BEHIND_S, Location, write_pending
from pbx.store.recordings import RecordingQueries
from pbx.store.rows import (
    Cdr,
    Extension,
    PermissionClass,
    RecordPolicy,
    parse_enum,
    validate_number,
    validate_password,
)
from pbx.store.schema import DB_FILENAME, WalIndexWatch, connect
from pbx.store.trunks import TrunkQueries

DEFAULT_REALM = "deskpbx"
REALM_KEY = "sip_realm"
NONCE_SECRET_KEY = "nonce_secret"
EXTENSION_CACHE_SIZE = 10_000
"""Cached lookups (hits and misses) before the cache starts over: a scanner trying
random numbers cannot grow it without bound."""

_COLUMN_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "name": str,
    "enabled": int,
    "record_policy": lambda v: parse_enum(RecordPolicy, v, "record policy").value,
    "permission": lambda v: parse_enum(PermissionClass, v, "permission class").value,
}


log = logging.getLogger(__name__)

IDLE_POLLS = 100
"""Polls of the flusher thread that find nothing to write before it parks (5 s at 50 ms)."""


class Store(TrunkQueries, RecordingQueries, ApiQueries, CdrQueries, BindingQueries, BanQueries):
    """Typed access to the DeskPBX database at `path` (created 0600 with defaults if missing).

    `write_behind` is how many seconds a REGISTER's binding change may wait in memory
    before it is written (pbx.store.location); 0 writes each one at once. `cdr_batch`
    is the same for CDRs given to `queue_cdr` (pbx.store.cdrs).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        write_behind: float = WRITE_BEHIND_S,
        cdr_batch: float = CDR_BATCH_S,
    ) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._db = sqlite_utils.Database(self._conn, execute_plugins=False)
        self._lock = threading.RLock()
        self._extensions: dict[str, Extension | None] = {}
        self._data_version = -1
        self._wal_watch = WalIndexWatch(self.path)
        self._location = Location()
        self.write_behind = write_behind
        self.cdr_batch = cdr_batch
        self._cdrs: list[Cdr] = []  # finished calls not yet written (queue_cdr)
        self._wake = threading.Event()  # wakes a parked flusher thread
        self._parked = True  # no flusher thread polling (none yet, or idle)
        self._flusher: threading.Thread | None = None
        self._stopping = threading.Event()  # set by close(): the flusher ends its wait
        self._closed = False
        self._init_settings()

    @classmethod
    def in_dir(
        cls,
        data_dir: Path | str,
        *,
        write_behind: float = WRITE_BEHIND_S,
        cdr_batch: float = CDR_BATCH_S,
    ) -> Store:
        """The store of a data directory (what `deskpbx --data-dir DIR` uses)."""
        path = Path(data_dir) / DB_FILENAME
        return cls(path, write_behind=write_behind, cdr_batch=cdr_batch)

    def close(self) -> None:
        """Write the bindings and CDRs still in memory, then close the file."""
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                self._stopping.set()  # the flusher thread sees _closed and ends
                self._wake.set()
                self._conn.close()
                self._wal_watch.close()

    def flush(self) -> None:
        """Write the pending binding changes, then the queued CDRs (one transaction each);
        a no-op when none."""
        with self._lock:
            self._flush_bindings()
            self._flush_cdrs()

    def _flush_bindings(self) -> None:
        pending = self._location.pending
        if not pending or self._closed:
            return
        self._location.pending = {}
        try:
            write_pending(self._conn, pending)
        except sqlite3.Error:
            # Keep them for the next try; newer changes made meanwhile win.
            self._location.pending = pending | self._location.pending
            raise

    def _flush_cdrs(self) -> None:
        if not self._cdrs or self._closed:
            return
        cdrs, self._cdrs = self._cdrs, []
        try:
            with self._transaction() as conn:  # bindings owed before them go first
                insert_cdrs(conn, cdrs)
        except sqlite3.Error:
            self._cdrs[:0] = cdrs  # kept, in order, for the next try
            raise

    def _flush_later(self) -> None:
        """Get the flusher thread polling (started once, woken when parked). Called under
        the lock by the change that finds it parked, so not once per REGISTER: waking a
        thread for every batch cost the registrar more than the batch's rows."""
        self._parked = False
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"store-flush {self.path.name}", daemon=True
            )
            self._flusher.start()
        else:
            self._wake.set()

    def _flush_loop(self) -> None:
        """Write pending bindings every `write_behind` seconds and queued CDRs every
        `cdr_batch` seconds; after IDLE_POLLS polls that found nothing, park until a change
        comes (an idle PBX does not poll)."""
        idle = 0
        period = min(t for t in (self.write_behind, self.cdr_batch, 1.0) if t > 0)
        due = [(self._flush_bindings, self.write_behind), (self._flush_cdrs, self.cdr_batch)]
        last = [time.monotonic()] * len(due)
        while not self._stopping.wait(period):
            with self._lock:
                if self._closed:
                    return
                idle = 0 if self._location.pending or self._cdrs else idle + 1
                now = time.monotonic()
                for i, (write, every) in enumerate(due):
                    if now - last[i] < every - period / 2:
                        continue
                    last[i] = now
                    try:
                        write()
                    except sqlite3.Error:
                        log.exception("writing registrar bindings or CDRs failed; will retry")
                if idle >= IDLE_POLLS:
                    self._parked = True
                    self._wake.clear()
            if idle >= IDLE_POLLS:
                self._wake.wait()
                idle = 0

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def backup(self, destination: Path) -> int:
        """A consistent copy of the whole database in `destination` (created owner-only),
        through SQLite's online backup, so it can run while the PBX serves calls; the
        copy's size in bytes. What is still in memory (bindings, CDRs) is written first."""
        destination = Path(destination)
        if destination.resolve() == self.path.resolve():
            raise StoreError("the backup file cannot be the database itself")
        with self._lock:
            self.flush()
            try:
                destination.unlink(missing_ok=True)
                os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                target = sqlite3.connect(destination)
            except (OSError, sqlite3.Error) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise StoreError(f"cannot write {destination}: {reason}") from exc
            try:
                self._conn.backup(target)
            finally:
                target.close()
        return destination.stat().st_size

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock: takes the write lock up front (no upgrade
        deadlock between two processes) and rolls back on any exception."""
        with self._lock:
            if self._location.pending or self._cdrs:
                self.flush()  # earlier changes first, in their own transactions
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(
        self,
        table: str,
        where: str | None = None,
        args: Any = None,
        *,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """SELECT * as dicts with one statement (Table.rows_where adds three schema queries
        per call, which tripled the cost of the registrar's location lookup)."""
        sql = f"SELECT * FROM {table}"
        sql += f" WHERE {where}" if where else ""
        sql += f" ORDER BY {order_by}" if order_by else ""
        sql += f" LIMIT {int(limit)}" if limit is not None else ""
        return self._select(sql, args or [])

    def _select(self, sql: str, args: Any, *, owed: bool | None = None) -> list[dict[str, Any]]:
        """Rows of one SELECT as dicts: one statement, where sqlite_utils' query() wraps each
        read in SAVEPOINT/RELEASE (three statements per lookup on the registrar's path).

        A read sees every change made through this Store: pending bindings are written
        first for a read of the bindings table (or when `owed` says the caller's rows are
        among them), queued CDRs for a read of the CDR table. Other reads write nothing: a
        PBX restarted under 1,000 phones used to commit one batch per REGISTER, as each
        first lookup of an extension wrote the registrations before it."""
        with self._lock:
            if self._location.pending and ("bindings" in sql if owed is None else owed):
                self._flush_bindings()
            if self._cdrs and "cdrs" in sql:
                self._flush_cdrs()
            cursor = self._conn.execute(sql, args)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

    # -- settings ---------------------------------------------------------------------------

    def _init_settings(self) -> None:
        with self._transaction() as conn:
            defaults = {REALM_KEY: DEFAULT_REALM, NONCE_SECRET_KEY: secrets.token_hex(32)}
            for key, value in defaults.items():
                conn.execute(
                    "INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, value)
                )

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._rows("settings", "key = ?", [key])
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        """Set a plain setting. Not for the realm: see the module docstring."""
        if key == REALM_KEY:
            raise InvalidValue("the SIP realm is fixed once the database exists")
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @property
    def realm(self) -> str:
        """The SIP digest realm of this PBX (RFC 3261 §22.1), 'deskpbx' by default."""
        return self.get_setting(REALM_KEY) or DEFAULT_REALM

    @property
    def nonce_secret(self) -> str:
        """Hex secret that keys stateless digest nonces; random per database."""
        return self.get_setting(NONCE_SECRET_KEY) or ""

    # -- extensions -------------------------------------------------------------------------

    def _ha1s(self, number: str, password: str) -> dict[str, str]:
        validate_password(number, password)
        realm = self.realm
        return {
            "ha1_md5": compute_ha1(number, realm, password, "MD5"),
            "ha1_sha256": compute_ha1(number, realm, password, "SHA-256"),
        }

    def add_extension(
        self,
        number: str,
        password: str,
        name: str = "",
        *,
        enabled: bool = True,
        record_policy: RecordPolicy | str = RecordPolicy.NEVER,
        permission: PermissionClass | str = PermissionClass.NATIONAL,
        now: float | None = None,
    ) -> Extension:
        """Create an extension; DuplicateExtension, InvalidValue or WeakPassword on bad input."""
        extension = Extension(
            number=validate_number(number),
            name=name,
            enabled=enabled,
            record_policy=parse_enum(RecordPolicy, record_policy, "record policy"),
            permission=parse_enum(PermissionClass, permission, "permission class"),
            created=time.time() if now is None else now,
            **self._ha1s(number, password),
        )
        try:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT INTO extensions (number, name, ha1_md5, ha1_sha256, enabled, "
                    "record_policy, permission, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        extension.number, extension.name, extension.ha1_md5,
                        extension.ha1_sha256, int(extension.enabled),
                        extension.record_policy.value, extension.permission.value,
                        extension.created,
                    ),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise DuplicateExtension(number) from None
        finally:
            self._extensions_changed()
        return extension

    def find_extension(self, number: str) -> Extension | None:
        """The extension `number`, or None; from the cache while the file is unchanged."""
        with self._lock:
            if self._wal_watch.maybe_changed():  # _fresh_extension_cache, one call less
                self._check_data_version()
            cache = self._extensions
            try:
                return cache[number]
            except KeyError:
                pass
            rows = self._select("SELECT * FROM extensions WHERE number = ?", (number,))
            extension = Extension.from_row(rows[0]) if rows else None
            if len(cache) >= EXTENSION_CACHE_SIZE:
                cache.clear()
            cache[number] = extension
            return extension

    def _fresh_extension_cache(self) -> dict[str, Extension | None]:
        """The extension cache, emptied first when another connection has committed since it
        was filled (PRAGMA data_version moves then; our own commits do not move it). The
        PRAGMA is skipped while the wal-index header shows no commit at all (WalIndexWatch)."""
        if self._wal_watch.maybe_changed():
            self._check_data_version()
        return self._extensions

    def _check_data_version(self) -> None:
        """Forget what the memory holds when PRAGMA data_version says another connection
        committed since the last look."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._extensions.clear()
            self._flush_bindings()  # they too may have changed (an extension removed elsewhere)
            self._location.forget()
            self._data_version = version

    def _current_data_version(self) -> int:
        """PRAGMA data_version as of now, run only when the wal-index shows a commit."""
        with self._lock:
            self._fresh_extension_cache()
            return self._data_version

    def _extensions_changed(self) -> None:
        """Forget cached extensions after a write on this connection (data_version misses it)."""
        with self._lock:
            self._extensions.clear()
            self._location.forget()  # removing an extension removes its bindings

    def get_extension(self, number: str) -> Extension:
        validate_number(number)
        extension = self.find_extension(number)
        if extension is None:
            raise UnknownExtension(number)
        return extension

    def list_extensions(self) -> list[Extension]:
        """All extensions, shortest then lowest number first (10, 11, ..., 100)."""
        rows = self._rows("extensions", order_by="length(number), number")
        return [Extension.from_row(row) for row in rows]

    def remove_extension(self, number: str) -> None:
        """Delete an extension and (by foreign-key cascade) its bindings."""
        validate_number(number)
        try:
            with self._transaction() as conn:
                cursor = conn.execute("DELETE FROM extensions WHERE number = ?", (number,))
        finally:
            self._extensions_changed()
        if cursor.rowcount == 0:
            raise UnknownExtension(number)

    def set_password(self, number: str, password: str) -> Extension:
        """Replace both HA1 values; existing registrations stay until they expire."""
        validate_number(number)
        return self._update(number, self._ha1s(number, password))

    def update_extension(
        self,
        number: str,
        *,
        name: str | None = None,
        enabled: bool | None = None,
        record_policy: RecordPolicy | str | None = None,
        permission: PermissionClass | str | None = None,
    ) -> Extension:
        """Change the given attributes of an extension; the others keep their values."""
        validate_number(number)
        given = {"name": name, "enabled": enabled, "record_policy": record_policy,
                 "permission": permission}  # fmt: skip
        changes = {
            column: _COLUMN_CONVERTERS[column](value)
            for column, value in given.items()
            if value is not None
        }
        return self._update(number, changes)

    def _update(self, number: str, changes: dict[str, Any]) -> Extension:
        try:
            with self._transaction() as conn:
                if changes:
                    assignments = ", ".join(f"{column} = :{column}" for column in changes)
                    cursor = conn.execute(
                        f"UPDATE extensions SET {assignments} WHERE number = :number",
                        {**changes, "number": number},
                    )
                    if cursor.rowcount == 0:
                        raise UnknownExtension(number)
        finally:
            self._extensions_changed()
        return self.get_extension(number)
