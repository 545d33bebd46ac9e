"""`Store`'s registrar bindings: the location service of RFC 3261 §10.3.

These methods are the registrar's and the router's view of who is registered
where. They live apart from `store.py` so the Store's core (connection, lock,
transactions, flusher thread, settings and extensions) stays one readable
module and the binding rules sit in one place, next to `location.py` (the
in-memory bindings and their write-behind) whose state they drive.

`apply_registration` and `active_bindings` are on the path of every REGISTER
and of every call routed to a phone: they answer from `Location` under the
Store's lock and run no SQL in the common case. As a mixin of `Store` they
cost no more per call than methods defined on `Store` itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pbx.store.errors import UnknownExtension
from pbx.store.location import (
    UPSERT_BINDING,
    WRITE_BEHIND_MAX,
    Location,
    active,
    load,
    normalized,
    out_of_order,
)
from pbx.store.mixin import StoreMixin
from pbx.store.rows import Binding, Extension

_BINDING_ORDER = "extension, q DESC, expires_at DESC, contact"


class BindingQueries(StoreMixin):
    """Mixed into Store: adding, refreshing, reading and removing registrar bindings."""

    if TYPE_CHECKING:
        _conn: sqlite3.Connection
        _lock: threading.RLock
        _location: Location
        _extensions: dict[str, Extension | None]
        _parked: bool
        write_behind: float

        def _select(
            self, sql: str, args: Any, *, owed: bool | None = None
        ) -> list[dict[str, Any]]: ...

        def _flush_bindings(self) -> None: ...

        def _flush_later(self) -> None: ...

        def _fresh_extension_cache(self) -> dict[str, Extension | None]: ...

        def find_extension(self, number: str) -> Extension | None: ...

    def upsert_binding(self, binding: Binding) -> None:
        """Add or refresh the binding of (extension, contact); UnknownExtension if none."""
        try:
            with self._transaction() as conn:
                conn.execute(UPSERT_BINDING, binding.to_row())
        except sqlite3.IntegrityError:
            raise UnknownExtension(binding.extension) from None
        finally:
            self._location.forget(binding.extension)

    def apply_registration(
        self,
        extension: str,
        changes: Sequence[tuple[str, Binding | None]],
        call_id: str,
        cseq: int,
        now: float,
    ) -> list[Binding] | None:
        """One REGISTER's binding changes, all or none (RFC 3261 §10.3 steps 7-8).

        `changes` pairs each Contact URI with its new binding, or None to remove it. When a
        stored binding of one of them has this Call-ID and a CSeq at or above `cseq`, the
        request is out of order: nothing changes and the answer is None. Otherwise the
        bindings active at `now` (epoch s) after the change, as `active_bindings` orders
        them. Decided and answered from memory; the rows follow within `write_behind`
        seconds (pbx.store.location), so a refresh runs no SQL at all.
        """
        final = {contact: None if b is None else normalized(b) for contact, b in changes}
        with self._lock:
            current = self._location.known.get(extension)
            if current is None:
                if not self._known_extension(extension):
                    if any(binding is not None for binding in final.values()):
                        raise UnknownExtension(extension)
                    return []
                current = self._location.known[extension] = self._load_location(extension)
            if out_of_order(current, final, call_id, cseq):
                return None
            pending = self._location.pending
            for contact, binding in final.items():
                if binding is None:
                    current.pop(contact, None)
                else:
                    current[contact] = binding
                pending[(extension, contact)] = binding
            self._owe_writes()
            return active(current.values(), now)

    def _load_location(self, extension: str) -> dict[str, Binding]:
        """The stored bindings of an extension the location does not hold: its pending
        changes are written first when it has any (none, usually: they are the location's
        own), the other extensions' stay in the batch."""
        pending = self._location.pending
        owed = bool(pending) and any(key[0] == extension for key in pending)
        return load(lambda sql, args: self._select(sql, args, owed=owed), extension)

    def _known_extension(self, extension: str) -> bool:
        """Whether `extension` exists: a cached hit is trusted as the registrar's HA1 lookup
        just checked it; a cached miss is looked up again (it may have been added since)."""
        cached = self._extensions.get(extension)
        return cached is not None or self.find_extension(extension) is not None

    def _owe_writes(self) -> None:
        pending = len(self._location.pending)
        if pending >= WRITE_BEHIND_MAX or self.write_behind <= 0:
            self._flush_bindings()
        elif self._parked:
            self._flush_later()

    def get_binding(self, extension: str, contact: str) -> Binding | None:
        """The stored binding, expired or not (§10.3 step 6 compares its Call-ID and CSeq)."""
        rows = self._rows("bindings", "extension = ? AND contact = ?", [extension, contact])
        return Binding.from_row(rows[0]) if rows else None

    def remove_binding(self, extension: str, contact: str) -> bool:
        """Remove one binding (REGISTER with Expires: 0); True if it existed."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM bindings WHERE extension = ? AND contact = ?", (extension, contact)
            )
        self._location.forget(extension)
        return cursor.rowcount > 0

    def remove_bindings(self, extension: str) -> int:
        """Remove every binding of an extension (Contact: * with Expires: 0); the count."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM bindings WHERE extension = ?", (extension,))
        self._location.forget(extension)
        return cursor.rowcount

    def active_bindings(self, now: float, extension: str | None = None) -> list[Binding]:
        """Bindings not expired at `now` (epoch s), highest q first, for one or all extensions.

        One extension is answered from memory, loaded once (pbx.store.location keeps it
        equal to the file; a commit of another connection makes it forget), so routing a
        call to a registered phone runs no SQL.
        """
        if extension is not None:
            with self._lock:
                self._fresh_extension_cache()
                current = self._location.known.get(extension)
                if current is None and self._known_extension(extension):
                    current = self._location.known[extension] = self._load_location(extension)
                if current is not None:
                    return active(current.values(), now)
        where = "expires_at > ?"
        args: list[float | str] = [now]
        if extension is not None:
            where += " AND extension = ?"
            args.append(extension)
        rows = self._rows("bindings", where, args, order_by=_BINDING_ORDER)
        return [Binding.from_row(row) for row in rows]

    def active_binding_counts(self, now: float) -> dict[str, int]:
        """Number of registered contacts per extension at `now`; absent means none."""
        with self._lock:
            self._flush_bindings()
            cursor = self._conn.execute(
                "SELECT extension, count(*) FROM bindings WHERE expires_at > ? GROUP BY extension",
                (now,),
            )
            return {extension: count for extension, count in cursor}

    def purge_expired_bindings(self, now: float) -> int:
        """Delete bindings whose expiry is at or before `now`; the count deleted."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
        self._location.forget()
        return cursor.rowcount

    def mark_qualified(self, extension: str, contact: str, reachable: bool, now: float) -> bool:
        """Record the outcome of an OPTIONS keepalive; False if the binding is gone."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE bindings SET reachable = ?, last_qualified = ? "
                "WHERE extension = ? AND contact = ?",
                (int(reachable), now, extension, contact),
            )
        self._location.forget(extension)
        return cursor.rowcount > 0
